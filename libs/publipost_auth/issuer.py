"""The OpenID Connect issuer as Publipost sees it: its discovery document, its key set, its token endpoint."""

import asyncio
import time
from typing import Any
from urllib.parse import urlparse

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey
from publipost_logging import get_logger
from publipost_settings import ServiceSettings

from .errors import InvalidCredentials, IssuerUnavailable

log = get_logger(__name__)

VerificationKey = RSAKey | ECKey | OKPKey
DISCOVERY_PATH = "/.well-known/openid-configuration"
RETRY_AFTER_FAILURE_S = 1.0  # while the issuer is down, calls needing its keys ask it at most this often


def _checked_url(url: str, what: str, allow_http: bool) -> str:
    scheme = urlparse(url).scheme
    if scheme == "https" or (scheme == "http" and allow_http):
        return url
    raise ValueError(
        f"{what} {url!r} must be an https:// address (plain http only for the development issuer, auth_dev_issuer)"
    )


class Issuer:
    """Discovery (once, kept until it fails) and the URLs it gives; the settings may name any of them.

    Each call to the issuer opens its own short-lived connection: they are rare (keys every hour, a service's
    token every few minutes), and nothing is left open to close at shutdown."""

    def __init__(self, settings: ServiceSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if settings.auth_issuer_url is None:
            raise ValueError("no issuer: auth_issuer_url is unset")
        allow_http = settings.auth_dev_issuer
        self.url = _checked_url(settings.auth_issuer_url, "auth_issuer_url", allow_http)
        self._jwks_url = settings.auth_jwks_url and _checked_url(settings.auth_jwks_url, "auth_jwks_url", allow_http)
        self._token_url = settings.auth_token_url and _checked_url(
            settings.auth_token_url, "auth_token_url", allow_http
        )
        self._allow_http = allow_http
        self._timeout_s = settings.auth_http_timeout_s
        self._transport = transport
        self._metadata: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is not None:
            return self._metadata
        async with self._lock:
            if self._metadata is None:
                url = self.url.rstrip("/") + DISCOVERY_PATH
                metadata = (await self.request("GET", url)).json()
                # OpenID Connect Discovery §4.3: the document must name the issuer it was asked of.
                if metadata.get("issuer") != self.url:
                    raise ValueError(f"{url} names issuer {metadata.get('issuer')!r}, not {self.url!r}")
                self._metadata = metadata
        return self._metadata

    async def jwks_url(self) -> str:
        if self._jwks_url:
            return self._jwks_url
        return _checked_url((await self.metadata())["jwks_uri"], "jwks_uri", self._allow_http)

    async def token_url(self) -> str:
        if self._token_url:
            return self._token_url
        return _checked_url((await self.metadata())["token_endpoint"], "token_endpoint", self._allow_http)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One call to the issuer; an error status raises httpx.HTTPStatusError unless `check=False`."""
        check = kwargs.pop("check", True)
        async with httpx.AsyncClient(timeout=self._timeout_s, transport=self._transport) as http:
            response = await http.request(method, url, **kwargs)
        if check:
            response.raise_for_status()
        return response


class KeySet:
    """The issuer's public keys by key id, fetched when first needed, again after `max_age_s`, and again when
    a token names a key id not in the set (a key rotation) — but not more often than `min_refresh_s`, so
    tokens with made-up key ids cost the issuer nothing. When a fetch fails, the keys in hand are kept."""

    def __init__(self, issuer: Issuer, max_age_s: float, min_refresh_s: float) -> None:
        self.issuer = issuer
        self.max_age_s = max_age_s
        self.min_refresh_s = min_refresh_s
        self._keys: dict[str | None, VerificationKey] = {}
        self._fetched_at: float | None = None  # the last fetch that answered
        self._tried_at: float | None = None  # the last fetch, answered or not
        self._failed = False  # whether that fetch failed
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key_for(self, kid: str | None, alg: str) -> VerificationKey:
        now = time.monotonic()
        if self._fetched_at is None or now - self._fetched_at > self.max_age_s:
            await self._refresh(stale_before=now - (RETRY_AFTER_FAILURE_S if self._failed else 0))
        key = self._find(kid, alg)
        if key is None:
            # A new key id: fetch again, unless that was done a moment ago.
            await self._refresh(stale_before=time.monotonic() - self.min_refresh_s)
            key = self._find(kid, alg)
        if key is None:
            raise InvalidCredentials(f"the token is signed by key {kid!r}, which the issuer does not publish")
        return key

    def _find(self, kid: str | None, alg: str) -> VerificationKey | None:
        if kid is not None:
            return self._keys.get(kid)
        # No key id in the token: acceptable only when the issuer has a single key for that algorithm.
        fitting = [key for key in self._keys.values() if key.get("alg") in (None, alg)]
        return fitting[0] if len(fitting) == 1 else None

    async def _refresh(self, stale_before: float) -> None:
        """Fetch the keys unless a fetch was tried after `stale_before` (then another request just did it)."""
        async with self._lock:
            if self._tried_at is not None and self._tried_at > stale_before:
                if not self._keys:
                    raise IssuerUnavailable("the issuer's keys could not be fetched; try again shortly")
                return
            self._tried_at = time.monotonic()
            self.fetches += 1
            try:
                response = await self.issuer.request("GET", await self.issuer.jwks_url())
                keys = _verification_keys(response.json())
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                log.warning("the issuer's keys could not be fetched", issuer=self.issuer.url, error=str(exc))
                self._failed = True
                if not self._keys:
                    raise IssuerUnavailable("the issuer's keys could not be fetched; try again shortly") from exc
                return
            self._keys, self._fetched_at, self._failed = keys, time.monotonic(), False


def _verification_keys(document: Any) -> dict[str | None, VerificationKey]:
    keys: dict[str | None, VerificationKey] = {}
    for data in document["keys"]:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig" or data.get("kty") == "oct":
            continue  # encryption keys, and shared secrets that have no place in a public key set
        try:
            key = JWKRegistry.import_key(data)
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("an issuer key is skipped", kid=data.get("kid"), error=str(exc))
            continue
        if key.is_private:
            continue  # a private key published by mistake is not used
        keys[data.get("kid")] = key
    return keys
