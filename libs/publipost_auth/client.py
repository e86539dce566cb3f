"""Calls from one Publipost service to another carry the calling service's own credentials: a token of the
issuer obtained with the service's client id and secret (OAuth 2.0 client credentials), kept until shortly
before it expires, fetched again after a 401.

    http = service_client(settings, settings.directory_url, timeout_s=10)
    await http.get("/segments/s1/recipients", headers={"X-Tenant-Id": tenant_id})

The tenant a service acts for is named by the call (X-Tenant-Id), as the event it handles says.
"""

import asyncio
import time
from collections.abc import AsyncGenerator

import httpx
from publipost_settings import ServiceSettings
from publipost_telemetry import traced_transport, tracer_provider

from .issuer import Issuer

EARLY_RENEWAL_S = 30  # a token is renewed this long before it expires, so no call carries one expiring on the way


class ClientCredentials(httpx.Auth):
    """An httpx auth: each request gets `Authorization: Bearer <the service's token>`."""

    requires_response_body = False

    def __init__(self, issuer: Issuer, client_id: str, client_secret: str, scope: str | None = None) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def token(self, *, renew: bool = False) -> str:
        async with self._lock:
            if renew or self._token is None or time.monotonic() > self._expires_at - EARLY_RENEWAL_S:
                await self._fetch()
            assert self._token is not None
            return self._token

    async def _fetch(self) -> None:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        response = await self.issuer.request(
            "POST", await self.issuer.token_url(), data=form, auth=(self.client_id, self._secret), check=False
        )
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"the issuer refused client {self.client_id!r} a token ({response.status_code}: {response.text[:200]})",
                request=response.request,
                response=response,
            )
        answer = response.json()
        self.fetches += 1
        self._token = answer["access_token"]
        self._expires_at = time.monotonic() + float(answer.get("expires_in", 300))

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # The token may have been refused for a reason its expiry time did not tell (the issuer's keys
            # rotated, the clocks disagree): one fresh token, one more try.
            fresh = await self.token(renew=True)
            if fresh != token:
                request.headers["Authorization"] = f"Bearer {fresh}"
                yield request

    def sync_auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        raise RuntimeError("ClientCredentials works with httpx.AsyncClient only")


def service_credentials(settings: ServiceSettings) -> ClientCredentials | None:
    """The service's own credentials, or None when it has none (auth_client_id / auth_client_secret unset)."""
    if not (settings.auth_issuer_url and settings.auth_client_id and settings.auth_client_secret):
        return None
    return ClientCredentials(
        Issuer(settings),
        settings.auth_client_id,
        settings.auth_client_secret.get_secret_value(),
        settings.auth_client_scope,
    )


CONNECT_RETRIES = 2


def service_client(
    settings: ServiceSettings,
    base_url: str,
    timeout_s: float,
    *,
    credentials: ClientCredentials | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The one HTTP client to another service: it authenticates as this service, and a connection that
    cannot be made (the other service restarting) is tried again CONNECT_RETRIES times before the call fails
    (a request that reached the service is never sent twice; the caller's message then goes through the
    bus's retries). Several clients of one service can share one `credentials` (one token for all); without
    credentials configured it sends none, which the other service accepts only while its authentication is
    off. With tracing on, each call is a span of the caller's trace, which the other service continues."""
    auth = credentials or service_credentials(settings)
    transport = transport or httpx.AsyncHTTPTransport(retries=CONNECT_RETRIES)
    transport = traced_transport(transport, tracer_provider(settings))
    return httpx.AsyncClient(base_url=base_url, timeout=timeout_s, auth=auth, transport=transport)
