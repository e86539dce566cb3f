"""Fakes for the identity tests: an OpenID Connect issuer in memory (discovery and a key set served through
httpx.MockTransport, tokens signed on demand, every fetch of the key set counted, keys rotated at will) and
API keys in memory."""

import time
from datetime import UTC, datetime
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from publipost_auth import ApiKey, Authenticator, Issuer, Role, TokenVerifier
from publipost_auth.api_keys import new_key
from publipost_settings import ServiceSettings
from pymongo.errors import AutoReconnect

ISSUER_URL = "https://issuer.test/realms/publipost"
AUDIENCE = "publipost"
T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", {"alg": "ES256", "use": "sig"}, auto_kid=True)


class FakeIssuer:
    def __init__(self, url: str = ISSUER_URL) -> None:
        self.url = url
        self.keys: list[ECKey | RSAKey] = [ec_key()]
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.down = False
        self.requests = 0

    @property
    def key(self) -> ECKey | RSAKey:
        return self.keys[0]

    def rotate(self) -> ECKey:
        """A new key published beside the old one, as issuers do before they sign with it."""
        key = ec_key()
        self.keys.append(key)
        return key

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": "user-1",
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "tenant_id": "acme",
            "roles": ["operator"],
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def sign(self, key: ECKey | RSAKey | None = None, kid: str | None = "", alg: str = "ES256", **claims: Any) -> str:
        key = key or self.key
        header = {"alg": alg, "typ": "JWT"}
        if kid is not None:
            header["kid"] = kid or key.kid
        return jwt.encode(header, self.claims(**claims), key, algorithms=[alg])

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.down:
            raise httpx.ConnectError("issuer down", request=request)
        if request.url.path.endswith("/.well-known/openid-configuration"):
            self.discovery_fetches += 1
            metadata = {"issuer": self.url, "jwks_uri": f"{self.url}/certs", "token_endpoint": f"{self.url}/token"}
            return httpx.Response(200, json=metadata)
        if request.url.path.endswith("/certs"):
            self.jwks_fetches += 1
            return httpx.Response(200, json={"keys": [key.as_dict(private=False) for key in self.keys]})
        return httpx.Response(404)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def settings(self, **overrides: Any) -> ServiceSettings:
        values: dict[str, Any] = {
            "service_name": "test",
            "auth_issuer_url": self.url,
            "auth_audience": AUDIENCE,
            "auth_leeway_s": 5,
            **overrides,
        }
        return ServiceSettings(**values)

    def verifier(self, **overrides: Any) -> TokenVerifier:
        settings = self.settings(**overrides)
        return TokenVerifier(settings, Issuer(settings, self.transport))

    def authenticator(self, api_keys: Any = None, **overrides: Any) -> Authenticator:
        verifier = self.verifier(**overrides)
        return Authenticator(verifier.settings, verifier, api_keys)


class MemoryKeys:
    """ApiKeyRepository's reads and last-use writes, in memory, counting them."""

    def __init__(self) -> None:
        self.now = T0
        self.stored: dict[str, dict] = {}
        self.reads = 0
        self.batches: list[dict[str, datetime]] = []
        self.failing = False

    def clock(self) -> datetime:
        return self.now

    def add(self, tenant_id: str = "acme", roles: frozenset[Role] = frozenset({Role.INTEGRATOR})) -> str:
        key_id, key, digest = new_key()
        api_key = ApiKey(key_id, tenant_id, "CRM", roles, T0, "user-1")
        self.stored[key_id] = {"key": api_key, "secret_sha256": digest}
        return key

    def revoke(self, key_id: str) -> None:
        entry = self.stored[key_id]
        entry["key"] = ApiKey(**{**entry["key"].__dict__, "revoked_at": self.now})

    async def find_with_digest(self, key_id: str) -> tuple[ApiKey, str] | None:
        self.reads += 1
        entry = self.stored.get(key_id)
        return None if entry is None else (entry["key"], entry["secret_sha256"])

    async def record_last_use(self, last_uses: dict[str, datetime]) -> None:
        if self.failing:
            raise AutoReconnect("database down")
        if last_uses:
            self.batches.append(dict(last_uses))
