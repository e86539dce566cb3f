"""The services' HTTP APIs, called with the signed-in person's token: the services decide what they may see
and do, exactly as for any other caller."""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from .settings import ConsoleSettings


class SignedOut(Exception):
    """A service refused the token (expired, revoked): the person signs in again."""


class ServiceUnreachable(Exception):
    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service


class ServiceRefused(Exception):
    """A service's answer that is not a success, with its reason in words (field names included)."""

    def __init__(self, service: str, status: int, detail: str) -> None:
        super().__init__(f"{service} {status}: {detail}")
        self.service = service
        self.status = status
        self.detail = detail


def detail_of(response: httpx.Response) -> str:
    """The reason a service gave: its `detail` (a text, or FastAPI's list of {loc, msg}), else the status."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):
        parts = []
        for problem in detail:
            where = ".".join(str(p) for p in problem.get("loc", []) if p != "body") if isinstance(problem, dict) else ""
            message = problem.get("msg", problem) if isinstance(problem, dict) else problem
            parts.append(f"{where}: {message}" if where else str(message))
        return "; ".join(parts)
    if isinstance(detail, str):
        return detail
    return f"HTTP {response.status_code} {response.reason_phrase}"


class Services:
    """One connection pool per service, shared by every request of the console."""

    def __init__(self, settings: ConsoleSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        urls = {
            "template": settings.template_url,
            "directory": settings.directory_url,
            "merge": settings.merge_url,
            "dispatch": settings.dispatch_url,
            "scheduler": settings.scheduler_url,
            "render-pdf": settings.render_url,
        }
        self._clients = {
            name: httpx.AsyncClient(base_url=url, timeout=settings.http_timeout_s, transport=transport)
            for name, url in urls.items()
        }

    async def call(
        self, service: str, method: str, path: str, token: str, *, ok: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        """The answer when it is a success (or a status in `ok`); else SignedOut, ServiceRefused or
        ServiceUnreachable."""
        try:
            response = await self._clients[service].request(method, path, headers=_bearer(token), **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(service) from exc
        _check(service, response, ok)
        return response

    async def json(self, service: str, path: str, token: str, **kwargs: Any) -> Any:
        return (await self.call(service, "GET", path, token, **kwargs)).json()

    @asynccontextmanager
    async def stream(self, service: str, path: str, token: str) -> AsyncIterator[httpx.Response]:
        """A download passed through as it arrives, never held whole."""
        client = self._clients[service]
        try:
            async with client.stream("GET", path, headers=_bearer(token)) as response:
                if response.is_error:
                    await response.aread()
                    _check(service, response, ())
                yield response
        except httpx.TransportError as exc:
            raise ServiceUnreachable(service) from exc

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()


def _bearer(token: str) -> Mapping[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _check(service: str, response: httpx.Response, ok: tuple[int, ...]) -> None:
    if response.is_success or response.status_code in ok:
        return
    if response.status_code == 401:
        raise SignedOut()
    raise ServiceRefused(service, response.status_code, detail_of(response))
