"""The web console without a browser: its app driven over ASGI, signed in, the services behind it faked by
what they answer."""

import time
from collections.abc import AsyncIterator

import httpx
from cryptography.fernet import Fernet
from publipost_console.app import build
from publipost_console.session import SESSION_COOKIE, Seal, Session
from publipost_console.settings import ConsoleSettings

CONSOLE = "http://console.test"
KEY = Fernet.generate_key().decode()


class FakeServices:
    """Answers by (service host, method, path); records every request with its body read."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str, str], tuple[int, object]] = {}
        self.asked: list[httpx.Request] = []

    def answer(self, service: str, method: str, path: str, body: object, status: int = 200) -> None:
        self.answers[(service, method, path)] = (status, body)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.asked.append(request)
        status, body = self.answers.get((request.url.host, request.method, request.url.path), (404, {"detail": "no"}))
        return httpx.Response(status, json=body) if status != 204 else httpx.Response(204)

    def sent(self, service: str, method: str, path: str) -> httpx.Request:
        return next(r for r in self.asked if (r.url.host, r.method, r.url.path) == (service, method, path))


def sign_in(console: httpx.AsyncClient, roles: list[str]) -> None:
    session = Session(access_token="token", expires_at=int(time.time()) + 600, name="ann", roles=roles)
    console.cookies.set(SESSION_COOKIE, Seal(KEY, 3600).seal(session))


async def console_over(services: FakeServices) -> AsyncIterator[httpx.AsyncClient]:
    """The console as a browser on its own site reaches it (its posts carry the console's origin)."""
    settings = ConsoleSettings(
        auth_issuer_url="https://issuer.test",
        session_key=KEY,
        public_url=CONSOLE,
        **{f"{name}_url": f"http://{name}" for name in ("template", "directory", "merge", "dispatch", "scheduler")},
        render_url="http://render-pdf",
    )
    app = build(settings, httpx.MockTransport(services))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE, headers={"Origin": CONSOLE}) as client:
        yield client
