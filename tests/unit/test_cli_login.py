"""`publipost login | logout | whoami`, and what every command says when it cannot do its work."""

import base64
import json
import stat
import time
from urllib.parse import parse_qs

import httpx
import pytest
from publipost.profile import CredentialStore, Profile

from tests.unit.fakes.services_http import PROFILE, Terminal

ME = {
    "tenant_id": "acme",
    "subject": "user:operator",
    "kind": "user",
    "roles": ["operator"],
    "name": None,
    "email": None,
}


def jwt_expiring_at(exp: int) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'ES256'})}.{part({'sub': 'user:operator', 'exp': exp})}.c2lnbmF0dXJl"


@pytest.fixture
def terminal(tmp_path):
    return Terminal(tmp_path / "config")


def test_a_token_given_is_checked_with_the_services_then_kept_readable_by_its_owner_only(terminal):
    terminal.services.on("GET", f"{PROFILE.template_url}/me", ME)

    result = terminal.run("login", "--token", "pp_0123456789abcdef_" + "s" * 43)

    assert result.exit_code == 0, result.output
    assert "logged in as user:operator (tenant acme, roles operator)" in result.output
    stored = terminal.config / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text())["credential"].startswith("pp_0123456789abcdef_")
    sent = terminal.services.sent("GET", f"{PROFILE.template_url}/me")[0]
    assert sent.headers["authorization"] == "Bearer pp_0123456789abcdef_" + "s" * 43


def test_a_token_the_services_refuse_is_said_and_not_kept(terminal):
    refusal = httpx.Response(401, json={"detail": "the token has expired"})
    terminal.services.on("GET", f"{PROFILE.template_url}/me", refusal)

    result = terminal.run("login", "--token", "stale")

    assert result.exit_code == 1
    assert "error: template answered 401: the token has expired (log in again: publipost login)" in result.output
    assert "Traceback" not in result.output
    assert not (terminal.config / "credentials.json").exists()


def test_a_person_logs_in_with_a_password_at_the_issuer_s_token_endpoint(terminal):
    expires = int(time.time()) + 900
    token = jwt_expiring_at(expires)
    terminal.services.on(
        "GET",
        f"{PROFILE.issuer_url}/.well-known/openid-configuration",
        {"token_endpoint": f"{PROFILE.issuer_url}/token"},
    )
    terminal.services.on("POST", f"{PROFILE.issuer_url}/token", {"access_token": token, "token_type": "Bearer"})

    result = terminal.run("login", "operator", input="s3cret\n")

    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output  # asked without echo
    assert "logged in as operator at http://127.0.0.1:8107; the token expires at" in result.output
    form = parse_qs(terminal.services.sent("POST", f"{PROFILE.issuer_url}/token")[0].content.decode())
    assert form == {
        "grant_type": ["password"],
        "client_id": ["publipost-cli"],
        "username": ["operator"],
        "password": ["s3cret"],
    }
    stored = CredentialStore(terminal.config).load()
    assert stored is not None and stored.credential == token and stored.user == "operator"
    assert stored.expires_at is not None and int(stored.expires_at.timestamp()) == expires


def test_a_wrong_password_is_the_issuer_s_words_and_nothing_is_kept(terminal):
    terminal.services.on(
        "GET",
        f"{PROFILE.issuer_url}/.well-known/openid-configuration",
        {"token_endpoint": f"{PROFILE.issuer_url}/token"},
    )
    refused = httpx.Response(
        400, json={"error": "invalid_grant", "error_description": "unknown user or wrong password"}
    )
    terminal.services.on("POST", f"{PROFILE.issuer_url}/token", refused)

    result = terminal.run("login", "operator", "--password", "wrong")

    assert result.exit_code == 1
    assert "error: issuer answered 400: unknown user or wrong password (invalid_grant)" in result.output
    assert not (terminal.config / "credentials.json").exists()


def test_whoami_answers_from_the_services_and_logout_forgets(terminal):
    terminal.services.on("GET", f"{PROFILE.template_url}/me", ME)
    assert terminal.run("login", "--token", jwt_expiring_at(2_000_000_000)).exit_code == 0

    who = terminal.run("whoami")
    assert who.exit_code == 0
    assert "user:operator (tenant acme, roles operator)" in who.output
    assert "token expires at 2033-05-18 03:33 UTC" in who.output
    assert json.loads(terminal.run("whoami", "--json").output) == ME

    assert "logged out" in terminal.run("logout").output
    after = terminal.run("whoami")
    assert after.exit_code == 1
    assert "error: not logged in: run `publipost login` (or set PUBLIPOST_TOKEN)" in after.output


def test_a_token_in_the_environment_is_used_without_logging_in(tmp_path):
    terminal = Terminal(tmp_path, env_credential="from-the-environment")
    terminal.services.on("GET", f"{PROFILE.template_url}/me", ME)

    assert terminal.run("whoami").exit_code == 0
    assert terminal.services.requests[0].headers["authorization"] == "Bearer from-the-environment"


def test_a_service_out_of_reach_is_named_with_the_variable_that_moves_it(terminal):
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    terminal.services.on("GET", f"{PROFILE.template_url}/me", refused)

    result = terminal.run("login", "--token", "t")

    assert result.exit_code == 1
    assert (
        "error: cannot reach template at http://127.0.0.1:8101: connection refused "
        "(is the stack up? PUBLIPOST_TEMPLATE_URL says where it is)"
    ) in result.output


def test_the_services_are_found_where_the_environment_says_else_on_the_local_stack_s_ports(tmp_path):
    assert Profile.from_env({}) == Profile(
        "http://127.0.0.1:8101",
        "http://127.0.0.1:8103",
        "http://127.0.0.1:8105",
        "http://127.0.0.1:8106",
        "http://127.0.0.1:8107",
    )
    moved = Profile.from_env({"PUBLIPOST_HTTP_PORT_BASE": "9000", "PUBLIPOST_MERGE_URL": "https://merge.example/"})
    assert (moved.template_url, moved.merge_url, moved.issuer_url) == (
        "http://127.0.0.1:9001",
        "https://merge.example",
        "http://127.0.0.1:9007",
    )
    assert CredentialStore.default({"XDG_CONFIG_HOME": str(tmp_path)}).path == tmp_path / "publipost/credentials.json"
