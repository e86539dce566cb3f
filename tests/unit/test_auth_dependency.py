"""A route guarded by `require(...)` answers 401 to a caller without valid credentials (with a challenge
saying why), 403 to one without the role or naming another tenant, and the caller to the route otherwise."""

from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from publipost_auth import ApiKeyVerifier, Principal, Role, require

from tests.fake_identity import FakeIssuer, MemoryKeys


def tiny_app(issuer: FakeIssuer, keys: MemoryKeys, **settings: object) -> FastAPI:
    app = FastAPI()

    @app.get("/mailings")
    async def list_mailings(caller: Annotated[Principal, Depends(require(Role.VIEWER, Role.OPERATOR))]) -> dict:
        return {"tenant": caller.tenant_id, "subject": caller.subject, "kind": caller.kind}

    @app.post("/sending-accounts")
    async def add_account(caller: Annotated[Principal, Depends(require(Role.ADMIN))]) -> dict:
        return {"tenant": caller.tenant_id}

    @app.get("/whoami")
    async def whoami(caller: Annotated[Principal, Depends(require())]) -> dict:
        return {"tenant": caller.tenant_id, "roles": sorted(caller.roles), "kind": caller.kind}

    api_keys = ApiKeyVerifier(keys, cache_s=10, flush_s=60)  # type: ignore[arg-type]
    app.state.authenticator = issuer.authenticator(api_keys=api_keys, **settings)
    return app


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


@pytest.fixture
def keys() -> MemoryKeys:
    return MemoryKeys()


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://publipost.test")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_credentials_is_a_401_with_a_bearer_challenge(issuer, keys):
    async with client(tiny_app(issuer, keys, auth_required=True)) as http:
        response = await http.get("/mailings", headers={"X-Tenant-Id": "acme"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="publipost"'


async def test_an_expired_token_is_a_401_whose_challenge_says_invalid_token_and_why(issuer, keys):
    async with client(tiny_app(issuer, keys, auth_required=True)) as http:
        response = await http.get("/mailings", headers=bearer(issuer.sign(exp=1_000_000)))
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="publipost", error="invalid_token"')
    assert "expired" in challenge and "expired" in response.json()["detail"]


async def test_a_caller_without_the_role_is_a_403_naming_the_roles_needed(issuer, keys):
    async with client(tiny_app(issuer, keys, auth_required=True)) as http:
        response = await http.post("/sending-accounts", headers=bearer(issuer.sign(roles=["operator", "viewer"])))
    assert response.status_code == 403
    assert response.json()["detail"] == "this needs the role admin"


async def test_a_caller_with_one_of_the_roles_gets_through_as_the_tokens_tenant(issuer, keys):
    async with client(tiny_app(issuer, keys, auth_required=True)) as http:
        response = await http.get("/mailings", headers=bearer(issuer.sign(roles=["viewer"])))
    assert response.status_code == 200
    assert response.json() == {"tenant": "acme", "subject": "user-1", "kind": "user"}


async def test_a_caller_naming_another_tenant_than_its_tokens_is_refused(issuer, keys):
    async with client(tiny_app(issuer, keys, auth_required=True)) as http:
        response = await http.get("/mailings", headers={**bearer(issuer.sign()), "X-Tenant-Id": "globex"})
        same = await http.get("/mailings", headers={**bearer(issuer.sign()), "X-Tenant-Id": "acme"})
    assert response.status_code == 403
    assert "globex" in response.json()["detail"]
    assert same.status_code == 200


async def test_another_service_acts_for_the_tenant_its_call_names(issuer, keys):
    token = issuer.sign(sub="publipost-scheduler", tenant_id=None, roles=["service", "viewer"])
    async with client(tiny_app(issuer, keys, auth_required=True)) as http:
        response = await http.get("/mailings", headers={**bearer(token), "X-Tenant-Id": "globex"})
        without_tenant = await http.get("/mailings", headers=bearer(token))
    assert response.json() == {"tenant": "globex", "subject": "publipost-scheduler", "kind": "service"}
    assert without_tenant.status_code == 403


async def test_an_api_key_works_in_x_api_key_or_as_a_bearer_credential_and_not_once_revoked(issuer, keys):
    key = keys.add(tenant_id="acme", roles=frozenset({Role.VIEWER}))
    app = tiny_app(issuer, keys, auth_required=True)
    async with client(app) as http:
        by_header = await http.get("/mailings", headers={"X-API-Key": key})
        as_bearer = await http.get("/mailings", headers=bearer(key))
        not_admin = await http.post("/sending-accounts", headers={"X-API-Key": key})
        key_id = key.split("_")[1]
        keys.revoke(key_id)
        app.state.authenticator.api_keys.forget(key_id)
        revoked = await http.get("/mailings", headers={"X-API-Key": key})
    assert by_header.json()["kind"] == as_bearer.json()["kind"] == "api_key"
    assert not_admin.status_code == 403
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]


async def test_without_role_arguments_any_authenticated_caller_gets_through(issuer, keys):
    async with client(tiny_app(issuer, keys, auth_required=True)) as http:
        response = await http.get("/whoami", headers=bearer(issuer.sign(roles=[])))
    assert response.status_code == 200 and response.json()["roles"] == []


async def test_while_authentication_is_off_a_call_without_credentials_acts_for_its_x_tenant_id(issuer, keys):
    async with client(tiny_app(issuer, keys, auth_required=False)) as http:
        anonymous = await http.post("/sending-accounts", headers={"X-Tenant-Id": "acme"})
        no_tenant = await http.get("/whoami")
        bad_token = await http.get("/whoami", headers={**bearer("not-a-token"), "X-Tenant-Id": "acme"})
        odd_tenant = await http.get("/whoami", headers={"X-Tenant-Id": "a/b"})
    assert anonymous.status_code == 200 and anonymous.json() == {"tenant": "acme"}
    assert no_tenant.status_code == 401
    assert bad_token.status_code == 401  # credentials given are checked, required or not
    assert odd_tenant.status_code == 422


async def test_with_the_issuer_unreachable_and_no_keys_known_a_token_gets_503_not_401(issuer, keys):
    issuer.down = True
    async with client(tiny_app(issuer, keys, auth_required=True)) as http:
        response = await http.get("/mailings", headers=bearer(issuer.sign()))
    assert response.status_code == 503
    assert response.headers["Retry-After"]


async def test_the_openapi_document_declares_the_bearer_and_api_key_schemes(issuer, keys):
    async with client(tiny_app(issuer, keys)) as http:
        schemes = (await http.get("/openapi.json")).json()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
