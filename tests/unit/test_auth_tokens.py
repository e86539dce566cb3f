"""A bearer token is accepted only when the issuer signed it for Publipost and it is valid now; the caller's
tenant and roles are what its claims say."""

import asyncio
import time

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from publipost_auth import Forbidden, InvalidCredentials, Issuer, IssuerUnavailable, PrincipalKind, Role, TokenVerifier

from tests.fake_identity import FakeIssuer, ec_key


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


async def test_a_token_the_issuer_signed_for_publipost_names_the_callers_tenant_and_roles(issuer):
    verifier = issuer.verifier()
    claims = await verifier.verify(issuer.sign(roles=["operator", "viewer", "offline_access"]))
    principal = verifier.principal(claims, acting_for=None)
    assert principal.tenant_id == "acme"
    assert principal.subject == "user-1"
    assert principal.roles == {Role.OPERATOR, Role.VIEWER}  # the issuer's own roles are left out
    assert principal.kind is PrincipalKind.USER


async def test_an_rsa_key_of_the_issuer_works_as_well_as_an_ec_one(issuer):
    issuer.keys = [RSAKey.generate_key(2048, {"alg": "RS256", "use": "sig"}, auto_kid=True)]
    assert (await issuer.verifier().verify(issuer.sign(alg="RS256")))["sub"] == "user-1"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "https://elsewhere.test"}, "iss"),
        ({"aud": "another-api"}, "aud"),
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"nbf": int(time.time()) + 86400}, "not valid yet"),  # computed at collection: still ahead when run
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
    ],
    ids=["wrong issuer", "wrong audience", "expired", "not before in the future", "no expiry", "no subject"],
)
async def test_a_token_for_someone_else_or_outside_its_validity_is_refused_saying_why(issuer, claims, reason):
    with pytest.raises(InvalidCredentials, match=reason):
        await issuer.verifier().verify(issuer.sign(**claims))


async def test_an_audience_list_holding_publipost_is_accepted(issuer):
    assert await issuer.verifier().verify(issuer.sign(aud=["account", "publipost"]))


async def test_the_leeway_absorbs_a_little_clock_skew_and_no_more(issuer):
    verifier = issuer.verifier(auth_leeway_s=30)
    assert await verifier.verify(issuer.sign(exp=int(time.time()) - 10, nbf=int(time.time()) + 10))
    with pytest.raises(InvalidCredentials, match="expired"):
        await verifier.verify(issuer.sign(exp=int(time.time()) - 40))


async def test_a_token_signed_by_another_key_under_the_issuers_key_id_fails_its_signature(issuer):
    forged = issuer.sign(key=ec_key(), kid=issuer.key.kid)
    with pytest.raises(InvalidCredentials, match="signature does not verify"):
        await issuer.verifier().verify(forged)


async def test_a_token_whose_claims_were_altered_after_signing_fails_its_signature(issuer):
    header, _, signature = issuer.sign().split(".")
    _, payload, _ = issuer.sign(tenant_id="other-tenant", roles=["admin"]).split(".")
    with pytest.raises(InvalidCredentials, match="signature"):
        await issuer.verifier().verify(f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("alg", ["none", "HS256"])
async def test_unsigned_and_shared_secret_tokens_are_refused(issuer, alg):
    if alg == "none":
        token = f"eyJhbGciOiJub25lIn0.{issuer.sign().split('.')[1]}."  # {"alg":"none"}, no signature
    else:
        # HMAC-signed: whoever knows the secret could sign anything, so no shared secret is ever trusted.
        secret = OctKey.generate_key(256)
        token = jwt.encode({"alg": "HS256", "kid": issuer.key.kid}, issuer.claims(), secret, algorithms=["HS256"])
    with pytest.raises(InvalidCredentials, match="algorithm"):
        await issuer.verifier().verify(token)
    with pytest.raises(ValueError, match="never accepted"):
        issuer.verifier(auth_algorithms=["ES256", alg])


async def test_garbage_is_refused_as_not_a_jwt(issuer):
    for token in ("not-a-token", "a.b.c", "é.é.é"):
        with pytest.raises(InvalidCredentials):
            await issuer.verifier().verify(token)


async def test_keys_are_fetched_once_and_a_new_key_id_makes_them_be_fetched_once_more(issuer):
    verifier = issuer.verifier(auth_jwks_min_refresh_s=0.05)
    for _ in range(5):
        await verifier.verify(issuer.sign())
    assert issuer.jwks_fetches == 1
    assert issuer.discovery_fetches == 1

    new_key = issuer.rotate()
    await asyncio.sleep(0.06)
    await verifier.verify(issuer.sign(key=new_key))
    await verifier.verify(issuer.sign(key=new_key))
    assert issuer.jwks_fetches == 2


async def test_made_up_key_ids_do_not_make_the_service_hammer_the_issuer(issuer):
    verifier = issuer.verifier(auth_jwks_min_refresh_s=60)
    await verifier.verify(issuer.sign())
    issuer.rotate()  # published now, but the last fetch was a moment ago
    for n in range(20):
        with pytest.raises(InvalidCredentials, match="does not publish"):
            await verifier.verify(issuer.sign(key=ec_key(), kid=f"made-up-{n}"))
    assert issuer.jwks_fetches == 1  # the first unknown id would refetch only after min_refresh_s


async def test_an_unknown_key_id_refetches_once_the_interval_has_passed(issuer):
    verifier = issuer.verifier(auth_jwks_min_refresh_s=0)
    await verifier.verify(issuer.sign())
    with pytest.raises(InvalidCredentials, match="does not publish"):
        await verifier.verify(issuer.sign(key=ec_key(), kid="made-up"))
    assert issuer.jwks_fetches == 2


async def test_keys_are_fetched_again_after_their_maximum_age(issuer):
    verifier = issuer.verifier(auth_jwks_max_age_s=0.05)
    await verifier.verify(issuer.sign())
    await asyncio.sleep(0.06)
    await verifier.verify(issuer.sign())
    assert issuer.jwks_fetches == 2


async def test_a_token_without_key_id_is_checked_with_the_issuers_only_key(issuer):
    assert await issuer.verifier().verify(issuer.sign(kid=None))
    issuer.rotate()
    with pytest.raises(InvalidCredentials):
        await issuer.verifier().verify(issuer.sign(kid=None))


async def test_with_the_issuer_down_cached_keys_go_on_working_and_without_any_the_answer_is_unavailable(issuer):
    verifier = issuer.verifier(auth_jwks_min_refresh_s=0, auth_jwks_max_age_s=0.01)
    await verifier.verify(issuer.sign())
    issuer.down = True
    await asyncio.sleep(0.02)
    assert await verifier.verify(issuer.sign())  # keys past their age are kept when a fetch fails

    requests = issuer.requests
    never_fetched = issuer.verifier()
    for _ in range(10):
        with pytest.raises(IssuerUnavailable):
            await never_fetched.verify(issuer.sign())
    assert issuer.requests == requests + 1  # a down issuer is asked again after a second, not on every call


async def test_a_discovery_document_naming_another_issuer_is_not_trusted(issuer):
    impostor = FakeIssuer(url="https://issuer.test/realms/other")  # answers for our issuer's address
    settings = issuer.settings()
    with pytest.raises(IssuerUnavailable):
        await TokenVerifier(settings, Issuer(settings, impostor.transport)).verify(issuer.sign())


def test_a_plain_http_issuer_is_refused_unless_it_is_the_development_one():
    with pytest.raises(ValueError, match="https"):
        FakeIssuer(url="http://127.0.0.1:8107").verifier()
    FakeIssuer(url="http://127.0.0.1:8107").verifier(auth_dev_issuer=True)


async def test_keycloak_realm_roles_are_read_when_the_roles_claim_is_absent(issuer):
    verifier = issuer.verifier()
    claims = await verifier.verify(issuer.sign(roles=None, realm_access={"roles": ["viewer", "uma_authorization"]}))
    assert verifier.principal(claims, None).roles == {Role.VIEWER}


async def test_claim_names_are_configurable_with_dotted_paths_for_nested_claims(issuer):
    verifier = issuer.verifier(auth_tenant_claim="org.id", auth_roles_claim="resource_access.publipost.roles")
    token = issuer.sign(tenant_id=None, org={"id": "globex"}, resource_access={"publipost": {"roles": "admin viewer"}})
    principal = verifier.principal(await verifier.verify(token), None)
    assert (principal.tenant_id, principal.roles) == ("globex", {Role.ADMIN, Role.VIEWER})


async def test_a_token_without_tenant_is_refused_unless_the_installation_has_a_single_one(issuer):
    token = issuer.sign(tenant_id=None)
    verifier = issuer.verifier()
    with pytest.raises(Forbidden, match="tenant_id"):
        verifier.principal(await verifier.verify(token), None)
    single = issuer.verifier(auth_default_tenant="main")
    assert single.principal(await single.verify(token), None).tenant_id == "main"


async def test_a_services_token_acts_for_the_tenant_its_call_names_and_must_name_one(issuer):
    verifier = issuer.verifier()
    claims = await verifier.verify(issuer.sign(sub="publipost-merge", tenant_id=None, roles=["service", "viewer"]))
    principal = verifier.principal(claims, acting_for="acme")
    assert (principal.kind, principal.tenant_id, principal.subject) == (
        PrincipalKind.SERVICE,
        "acme",
        "publipost-merge",
    )
    with pytest.raises(Forbidden, match="X-Tenant-Id"):
        verifier.principal(claims, acting_for=None)
