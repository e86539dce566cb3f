"""The console's history, campaign and settings screens without a browser: the console's app driven over
ASGI, the services behind it faked by what they answer; what a person sees, what the services are asked."""

import json
import time

import httpx
import pytest
from cryptography.fernet import Fernet
from publipost_console.app import build
from publipost_console.session import SESSION_COOKIE, Seal, Session
from publipost_console.settings import ConsoleSettings

CONSOLE = "http://console.test"
KEY = Fernet.generate_key().decode()


class FakeServices:
    """Answers by (service host, method, path); records every request."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str, str], tuple[int, object]] = {}
        self.asked: list[httpx.Request] = []

    def answer(self, service: str, method: str, path: str, body: object, status: int = 200) -> None:
        self.answers[(service, method, path)] = (status, body)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request)
        status, body = self.answers.get((request.url.host, request.method, request.url.path), (404, {"detail": "no"}))
        return httpx.Response(status, json=body) if status != 204 else httpx.Response(204)

    def sent(self, service: str, method: str, path: str) -> httpx.Request:
        return next(r for r in self.asked if (r.url.host, r.method, r.url.path) == (service, method, path))


@pytest.fixture
def services() -> FakeServices:
    return FakeServices()


def sign_in(console: httpx.AsyncClient, roles: list[str]) -> None:
    session = Session(access_token="token", expires_at=int(time.time()) + 600, name="ann", roles=roles)
    console.cookies.set(SESSION_COOKIE, Seal(KEY, 3600).seal(session))


@pytest.fixture
async def console(services):
    settings = ConsoleSettings(
        auth_issuer_url="https://issuer.test",
        session_key=KEY,
        public_url=CONSOLE,
        **{f"{name}_url": f"http://{name}" for name in ("template", "directory", "merge", "dispatch", "scheduler")},
    )
    app = build(settings, httpx.MockTransport(services))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE, headers={"Origin": CONSOLE}) as client:
        yield client


def entry(**overrides) -> dict:
    return {
        "send_id": "s-1",
        "kind": "dispatch",
        "dispatch_id": "d-1",
        "status": "failed",
        "to": ["three@reject.test"],
        "cc": [],
        "bcc": [],
        "subject": "Your notice 3",
        "at": "2026-12-04T10:00:00Z",
        "document": {"document_id": "doc-3", "document_number": "3", "name": "3.pdf", "mailing_id": "m-1"},
        "customer_number": "C3",
        "document_type": "notice",
        "error": "550 mailbox unavailable",
        "message_id": None,
        "smtp_reply": "550 5.1.1 no such user",
        "attempts": 1,
        "address_rule": "record",
        **overrides,
    }


async def test_the_history_is_filtered_by_what_the_person_chose_and_shows_each_error(console, services):
    services.answer("dispatch", "GET", "/history", {"items": [entry()], "page": 1, "per_page": 50, "has_next": True})
    sign_in(console, ["viewer"])
    page = await console.get("/history", params={"document_type": "notice", "status": "failed", "q": "notice"})
    assert page.status_code == 200
    asked = services.sent("dispatch", "GET", "/history").url.params
    assert dict(asked) == {"document_type": "notice", "status": "failed", "q": "notice", "page": "1"}
    assert "550 mailbox unavailable" in page.text and "three@reject.test" in page.text
    assert "/history?document_type=notice&amp;status=failed&amp;q=notice&amp;page=2" in page.text


async def test_a_failed_email_is_sent_again_to_the_same_addresses(console, services):
    services.answer("dispatch", "POST", "/sends", {"send_id": "s-2"}, status=202)
    sign_in(console, ["operator"])
    answer = await console.post(
        "/history/retry",
        data={"mailing_id": "m-1", "document_id": "doc-3", "to": "a@example.test,b@example.test", "subject": "S"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/history?retried=s-2"
    sent = json.loads(services.sent("dispatch", "POST", "/sends").content)
    assert sent["to"] == ["a@example.test", "b@example.test"] and sent["document_id"] == "doc-3"
