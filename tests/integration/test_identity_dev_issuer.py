"""The local stack's development issuer, started as `make up` starts it, issues tokens that Publipost
verifies end to end: a service's own (client credentials), a person's (password), an integrator's."""

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from publipost_auth import (
    Authenticator,
    InvalidCredentials,
    Issuer,
    Principal,
    PrincipalKind,
    Role,
    TokenVerifier,
    require,
    service_client,
)
from publipost_auth.pkce import new_verifier, s256_challenge
from publipost_localstack import dev_issuer
from publipost_localstack.processes import Background, free_port, wait_for_port
from publipost_settings import ServiceSettings

SERVICES = ("merge", "scheduler")


class RunningIssuer:
    def __init__(self, directory: Path, port: int, process: Background) -> None:
        self.directory = directory
        self.url = f"http://127.0.0.1:{port}"
        self.process = process

    @property
    def registry(self) -> dict:
        return json.loads((self.directory / dev_issuer.CLIENTS_FILE).read_text())

    def settings(self, **overrides: object) -> ServiceSettings:
        """A service's settings as the local stack gives them (identity_env)."""
        values: dict = {"service_name": "merge", "auth_issuer_url": self.url, "auth_dev_issuer": True, **overrides}
        return ServiceSettings(**values)

    def client_settings(self, service: str) -> ServiceSettings:
        client_id = dev_issuer.client_id_of(service)
        secret = self.registry["clients"][client_id]["secret"]
        return self.settings(service_name=service, auth_client_id=client_id, auth_client_secret=secret)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIssuer]:
    run_dir = tmp_path_factory.mktemp("issuer")
    directory = run_dir / "issuer"
    dev_issuer.prepare(directory, SERVICES)  # as Stack.start_issuer does, before the services start
    port = free_port()
    process = Background(f"dev-issuer-{port}", run_dir)
    command = [sys.executable, "-m", "publipost_localstack.dev_issuer", "serve", "--dir", str(directory)]
    process.start([*command, "--port", str(port)])
    wait_for_port("127.0.0.1", port, 30, "the development issuer")
    yield RunningIssuer(directory, port, process)
    process.stop()


def verifier(settings: ServiceSettings) -> TokenVerifier:
    return TokenVerifier(settings, Issuer(settings))


def test_keys_and_secrets_are_made_once_readable_by_their_owner_only(issuer):
    before = (issuer.directory / dev_issuer.KEY_FILE).read_text(), issuer.registry
    dev_issuer.prepare(issuer.directory, (*SERVICES, "dispatch"))  # `make up` again, with a service more
    assert (issuer.directory / dev_issuer.KEY_FILE).read_text() == before[0]
    assert issuer.registry["clients"]["publipost-merge"] == before[1]["clients"]["publipost-merge"]
    assert "publipost-dispatch" in issuer.registry["clients"]
    for name in (dev_issuer.KEY_FILE, dev_issuer.CLIENTS_FILE):
        assert (issuer.directory / name).stat().st_mode & 0o077 == 0


async def test_the_issuer_publishes_its_discovery_document_and_public_key_only(issuer):
    async with httpx.AsyncClient(base_url=issuer.url) as http:
        metadata = (await http.get("/.well-known/openid-configuration")).json()
        jwks = (await http.get("/jwks.json")).json()
    assert metadata["issuer"] == issuer.url
    assert metadata["jwks_uri"] == f"{issuer.url}/jwks.json"
    assert metadata["token_endpoint"] == f"{issuer.url}/token"
    [key] = jwks["keys"]
    assert key["kty"] == "EC" and key["alg"] == "ES256" and "d" not in key


async def test_a_services_token_verifies_and_acts_for_the_tenant_its_call_names(issuer):
    settings = issuer.client_settings("scheduler")
    token = await service_client(settings, "http://unused", 5).auth.token()  # type: ignore[union-attr]
    checking = verifier(issuer.settings())
    claims = await checking.verify(token)
    principal = checking.principal(claims, acting_for="acme")
    assert principal.kind is PrincipalKind.SERVICE
    assert principal.subject == "publipost-scheduler"
    assert principal.tenant_id == "acme"
    assert Role.ADMIN not in principal.roles and Role.VIEWER in principal.roles


async def test_a_persons_token_carries_their_tenant_and_roles(issuer):
    token = dev_issuer.user_token(issuer.url, issuer.directory, "admin")
    checking = verifier(issuer.settings())
    principal = checking.principal(await checking.verify(token), acting_for=None)
    assert (principal.kind, principal.subject, principal.tenant_id) == (PrincipalKind.USER, "user:admin", "demo")
    assert principal.roles == {Role.ADMIN, Role.OPERATOR}


async def test_wrong_secrets_and_passwords_get_no_token(issuer):
    async with httpx.AsyncClient(base_url=issuer.url) as http:
        wrong_secret = await http.post(
            "/token", data={"grant_type": "client_credentials"}, auth=("publipost-merge", "not-the-secret")
        )
        wrong_password = await http.post(
            "/token",
            data={"grant_type": "password", "client_id": "publipost-cli", "username": "admin", "password": "guess"},
        )
        public_as_service = await http.post(
            "/token", data={"grant_type": "client_credentials", "client_id": "publipost-cli"}
        )
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    assert wrong_password.status_code == 400 and wrong_password.json()["error"] == "invalid_grant"
    assert public_as_service.status_code == 400


async def test_a_token_of_another_audience_is_refused_by_publipost(issuer):
    token = dev_issuer.user_token(issuer.url, issuer.directory, "viewer")
    with pytest.raises(InvalidCredentials, match="aud"):
        await verifier(issuer.settings(auth_audience="another-api")).verify(token)


async def test_one_service_calls_anothers_guarded_route_with_its_own_token_fetched_once(issuer):
    # The called service: a route for viewers, authentication required, trusting the development issuer.
    app = FastAPI()

    @app.get("/segments/{segment_id}/recipients")
    async def recipients(segment_id: str, caller: Annotated[Principal, Depends(require(Role.VIEWER))]) -> dict:
        return {"segment": segment_id, "tenant": caller.tenant_id, "caller": caller.subject, "kind": caller.kind}

    called_settings = issuer.settings(service_name="recipient-directory", auth_required=True)
    app.state.authenticator = Authenticator.for_service(called_settings, mongo=None)

    # The calling service: its HTTP client carries its credentials.
    calling = issuer.client_settings("scheduler")
    http = service_client(calling, "http://directory.test", 5, transport=httpx.ASGITransport(app=app))
    async with http:
        answers = [await http.get(f"/segments/s{n}/recipients", headers={"X-Tenant-Id": "acme"}) for n in range(3)]
        anonymous = await httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d.test").get(
            "/segments/s1/recipients", headers={"X-Tenant-Id": "acme"}
        )
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == {"segment": "s0", "tenant": "acme", "caller": "publipost-scheduler", "kind": "service"}
    assert http.auth.fetches == 1  # type: ignore[union-attr]
    assert anonymous.status_code == 401


CONSOLE_BACK = "http://127.0.0.1:9999/callback"  # a loopback redirect URI: any port is the registered one's


def authorize_form(challenge: str, redirect_uri: str = CONSOLE_BACK, **overrides: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": dev_issuer.CONSOLE_CLIENT,
        "redirect_uri": redirect_uri,
        "state": "s-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }


async def sign_in(http: httpx.AsyncClient, issuer: RunningIssuer, verifier: str, **overrides: str) -> httpx.Response:
    password = issuer.registry["users"]["operator"]["password"]
    form = {**authorize_form(s256_challenge(verifier), **overrides), "username": "operator", "password": password}
    return await http.post("/authorize", data=form)


async def test_a_person_signs_in_on_the_form_and_the_console_exchanges_the_code_with_its_verifier(issuer):
    verifier_ = new_verifier()
    async with httpx.AsyncClient(base_url=issuer.url) as http:
        form = await http.get("/authorize", params=authorize_form(s256_challenge(verifier_)))
        signed_in = await sign_in(http, issuer, verifier_)
        back = httpx.URL(signed_in.headers["location"])
        exchange = {
            "grant_type": "authorization_code",
            "client_id": dev_issuer.CONSOLE_CLIENT,
            "code": back.params["code"],
            "redirect_uri": CONSOLE_BACK,
            "code_verifier": verifier_,
        }
        token = await http.post("/token", data=exchange)
        again = await http.post("/token", data=exchange)
    assert form.status_code == 200 and '<label for="password">Password</label>' in form.text
    assert signed_in.status_code == 303 and str(back).startswith(CONSOLE_BACK) and back.params["state"] == "s-123"
    assert token.status_code == 200
    checking = verifier(issuer.settings())
    claims = await checking.verify(token.json()["access_token"])
    assert (claims["sub"], claims["email"], claims["tenant_id"]) == ("user:operator", "operator@example.test", "demo")
    assert again.status_code == 400 and again.json()["error_description"] == "unknown or already used code"


async def test_a_code_is_worthless_without_its_verifier_and_the_form_refuses_strangers(issuer):
    verifier_ = new_verifier()
    async with httpx.AsyncClient(base_url=issuer.url) as http:
        signed_in = await sign_in(http, issuer, verifier_)
        code = httpx.URL(signed_in.headers["location"]).params["code"]
        stolen = await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "client_id": dev_issuer.CONSOLE_CLIENT,
                "code": code,
                "redirect_uri": CONSOLE_BACK,
                "code_verifier": new_verifier(),
            },
        )
        elsewhere = await http.get(
            "/authorize", params=authorize_form(s256_challenge(verifier_), "https://evil.test/callback")
        )
        no_pkce = await sign_in(http, issuer, verifier_, code_challenge_method="plain")
        wrong_password = await http.post(
            "/authorize",
            data={**authorize_form(s256_challenge(verifier_)), "username": "operator", "password": "guess"},
        )
    assert stolen.status_code == 400
    assert stolen.json()["error_description"] == "code_verifier does not match the code_challenge"
    assert elsewhere.status_code == 400 and "is not registered" in elsewhere.text
    assert httpx.URL(no_pkce.headers["location"]).params["error"] == "invalid_request"
    assert wrong_password.status_code == 401 and "Unknown user or wrong password." in wrong_password.text
