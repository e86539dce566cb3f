"""Sending accounts an admin edits, against the real pieces: where a stored password may go, which hosts an
account may name, and what the connection test tells."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Self

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.sealing import PasswordSeal
from publipost_dispatch.settings import DispatchSettings
from publipost_localstack.processes import free_port
from pymongo import AsyncMongoClient

TENANT = {"X-Tenant-Id": "acme"}
LOOPBACK = ["127.0.0.0/8", "::1"]
TEST_S = 1.5  # account_test_s of these tests


class LoginRecorder:
    """An SMTP server on loopback that takes any login and remembers each (login, password) it was given."""

    def __init__(self) -> None:
        self.logins: list[tuple[str, str]] = []
        self.port = free_port()
        self._controller = Controller(
            _Accept(), hostname="127.0.0.1", port=self.port, authenticator=self._authenticate, auth_require_tls=False
        )

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


class _Accept:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def account(port: int, **changes: object) -> dict[str, object]:
    return {
        "name": "Billing",
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "login": "billing",
        "from_address": "billing@acme.test",
        **changes,
    }


@pytest.fixture
async def dispatch_http(make_settings, running) -> AsyncIterator[Callable[..., Any]]:
    """`async with dispatch_http(**settings) as http`: a dispatch service (started) and a client of its API."""
    clients: list[httpx.AsyncClient] = []

    async def start(**overrides: object) -> httpx.AsyncClient:
        values: dict[str, object] = {
            "auth_required": False,  # the tenant is the X-Tenant-Id of the call (docs/identity.md)
            "account_key": PasswordSeal.new_key(),
            "account_test_s": TEST_S,
            "outbound_allow": LOOPBACK,
            **overrides,
        }
        service = await running(build_dispatch(make_settings(DispatchSettings, **values)))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://dispatch")
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.aclose()


async def test_moving_an_account_needs_its_password_again_and_the_stored_one_never_follows(dispatch_http):
    http = await dispatch_http()
    with LoginRecorder() as billing_server, LoginRecorder() as elsewhere:
        created = await http.post("/accounts", headers=TENANT, json=account(billing_server.port, password="s3cret-pw"))
        assert created.status_code == 201, created.text
        account_id = created.json()["id"]

        for move in ({"port": elsewhere.port}, {"host": "localhost"}, {"login": "someone-else"}):
            moved = await http.put(f"/accounts/{account_id}", headers=TENANT, json={**account(billing_server.port), **move})
            assert moved.status_code == 422, moved.text
            (problem,) = moved.json()["detail"]
            assert problem["loc"] == ["body", "password"]
            assert problem["msg"].startswith(f"give the password again: {next(iter(move))} changed")

        # Still where it was: the test logs in there, and the other server never hears the password.
        assert (await http.post(f"/accounts/{account_id}/test", headers=TENANT)).json()["ok"] is True
        assert billing_server.logins == [("billing", "s3cret-pw")] and elsewhere.logins == []

        # Moved with its password given again, it takes that one there.
        moved = await http.put(
            f"/accounts/{account_id}", headers=TENANT, json=account(elsewhere.port, password="elsewhere-pw")
        )
        assert moved.status_code == 200, moved.text
        assert (await http.post(f"/accounts/{account_id}/test", headers=TENANT)).json()["ok"] is True
        assert elsewhere.logins == [("billing", "elsewhere-pw")]

        # Anything else changes without it.
        renamed = await http.put(f"/accounts/{account_id}", headers=TENANT, json=account(elsewhere.port, name="Invoices"))
        assert renamed.status_code == 200 and renamed.json()["password_set"] is True


async def test_an_account_may_not_name_a_private_or_loopback_server_unless_allowed(dispatch_http, infra, namespace):
    http = await dispatch_http(outbound_allow=[])
    for host, answer in (
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("10.0.0.5", "10.0.0.5 is a private address"),
        ("localhost", "'localhost' does not resolve to a public address"),
    ):
        refused = await http.post("/accounts", headers=TENANT, json=account(2525, host=host, tls="starttls"))
        assert refused.status_code == 422, refused.text
        (problem,) = refused.json()["detail"]
        assert problem["loc"] == ["body", "host"]
        assert problem["msg"].startswith(answer) and "PUBLIPOST_OUTBOUND_ALLOW" in problem["msg"]

    # An account stored before the check (or before the allow-list changed) connects nowhere either.
    connections = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    now = datetime.now(UTC)
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_url)
    await client[f"{namespace}_dispatch"]["accounts"].insert_one(
        {**account(port), "_id": "stored-before", "tenant_id": "acme", "verify_certificate": True, "password_sealed": None,
         "from_name": None, "reply_to": None, "limits": {"connections": 1}, "pause_after_errors": None, "version": 1,
         "created_at": now, "updated_at": now}
    )
    await client.close()
    tested = (await http.post("/accounts/stored-before/test", headers=TENANT)).json()
    server.close()
    assert tested == {
        "ok": False,
        "reply": None,
        "error": "the account's server is refused: 127.0.0.1 is a loopback address: private, loopback and "
        "link-local addresses are refused unless PUBLIPOST_OUTBOUND_ALLOW lists it",
    }
    assert connections == []


async def test_the_connection_test_answers_alike_and_in_the_same_time_whatever_the_port_does(dispatch_http):
    http = await dispatch_http()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never greets

    async def not_smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    servers = [await asyncio.start_server(handler, "127.0.0.1", 0) for handler in (silent, not_smtp)]
    ports = {"closed": free_port(), **{name: s.sockets[0].getsockname()[1] for name, s in zip(("silent", "not SMTP"), servers, strict=True)}}
    answers = {}
    try:
        for state, port in ports.items():
            account_id = (await http.post("/accounts", headers=TENANT, json=account(port, login=None))).json()["id"]
            started = time.monotonic()
            answer = (await http.post(f"/accounts/{account_id}/test", headers=TENANT)).json()
            answers[state] = (answer, time.monotonic() - started)
        with LoginRecorder() as working:
            account_id = (await http.post("/accounts", headers=TENANT, json=account(working.port, password="pw"))).json()["id"]
            started = time.monotonic()
            answers["SMTP"] = ((await http.post(f"/accounts/{account_id}/test", headers=TENANT)).json(), time.monotonic() - started)
    finally:
        for server in servers:
            server.close()

    for state, port in ports.items():
        answer, _ = answers[state]
        assert answer == {
            "ok": False,
            "reply": None,
            "error": f"no SMTP server at 127.0.0.1:{port} let this service log in within {TEST_S:g}s "
            "(refused, closed, filtered, silent, TLS failed or not SMTP)",
        }, state
    answer, _ = answers["SMTP"]
    assert answer["ok"] is True and answer["reply"].startswith("250")
    times = [took for _, took in answers.values()]
    assert all(TEST_S <= took < TEST_S + 1.0 for took in times), times  # never sooner; later only by the machine's load
