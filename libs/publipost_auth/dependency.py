"""One FastAPI dependency for every route: `require(*roles)` answers who calls, or refuses with 401 / 403.

    from publipost_auth import Principal, Role, require

    @router.post("/mailings")
    async def create(caller: Annotated[Principal, Depends(require(Role.OPERATOR, Role.INTEGRATOR))]): ...

The roles are alternatives: any one of them lets the call through; no role at all means any caller. The
service's `Authenticator` is found on `app.state.authenticator` (publipost_runtime's Service sets it).
"""

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Header, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from publipost_settings import ServiceSettings
from pymongo import AsyncMongoClient

from .api_keys import ApiKeyRepository, ApiKeyVerifier, looks_like_api_key
from .batching import Batched
from .errors import AuthError, Forbidden, InvalidCredentials, IssuerUnavailable
from .issuer import Issuer
from .principal import PEOPLE_ROLES, Principal, PrincipalKind, Role
from .tokens import TokenVerifier
from .users import UserRepository, user_id

REALM = "publipost"
_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# Declared as security schemes, so /docs has an "Authorize" button and the OpenAPI document says how to call.
BEARER = HTTPBearer(auto_error=False, description="An access token of the issuer, or an API key (pp_…).")
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (pp_…).")


class Authenticator:
    """Turns a call's credentials into a Principal: the issuer's bearer tokens and the tenants' API keys."""

    def __init__(
        self,
        settings: ServiceSettings,
        tokens: TokenVerifier | None,
        api_keys: ApiKeyVerifier | None,
        users: UserRepository | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.api_keys = api_keys
        self.users = users
        self._known: set[str] = set()  # people this process has seen: a first sighting is written at once
        # The people who call, written in batches (users.py): a person's thousandth call costs no write.
        self.seen: Batched[str, tuple[Principal, datetime]] | None = (
            Batched(users.record_seen, settings.auth_last_use_flush_s, "users seen") if users is not None else None
        )

    @classmethod
    def for_service(cls, settings: ServiceSettings, mongo: AsyncMongoClient | None) -> "Authenticator":
        """The service's authenticator: tokens of the configured issuer, API keys of the identity database.
        Nothing is fetched until a call needs it."""
        tokens = TokenVerifier(settings, Issuer(settings)) if settings.auth_issuer_url else None
        api_keys = users = None
        if mongo is not None:
            identity = mongo[settings.identity_database_name]
            api_keys = ApiKeyVerifier(
                ApiKeyRepository(identity), settings.auth_api_key_cache_s, settings.auth_last_use_flush_s
            )
            users = UserRepository(identity)
        return cls(settings, tokens, api_keys, users)

    async def authenticate(self, credential: str | None, acting_for: str | None) -> Principal:
        """The caller of a credential (a bearer token or an API key); `acting_for` is the call's X-Tenant-Id."""
        if credential is None:
            if self.settings.auth_required:
                raise InvalidCredentials("credentials are required: a bearer token or an API key")
            if acting_for is None:
                raise InvalidCredentials("credentials are required (or, while authentication is off, X-Tenant-Id)")
            return Principal(acting_for, "anonymous", PEOPLE_ROLES, PrincipalKind.ANONYMOUS)
        if looks_like_api_key(credential):
            if self.api_keys is None:
                raise InvalidCredentials("this service takes no API keys")
            principal = await self.api_keys.verify(credential)
        else:
            if self.tokens is None:
                raise InvalidCredentials("this service trusts no issuer (auth_issuer_url is unset)")
            claims = await self.tokens.verify(credential)
            principal = self.tokens.principal(claims, acting_for)
            if principal.kind is PrincipalKind.USER and self.seen is not None:
                self._note_seen(self.seen, principal)
        # The tenant is the credential's: a caller naming another in X-Tenant-Id is told, not silently moved.
        if acting_for is not None and acting_for != principal.tenant_id:
            raise Forbidden(f"these credentials are not valid for tenant {acting_for!r}")
        return principal

    def _note_seen(self, seen: Batched[str, tuple[Principal, datetime]], principal: Principal) -> None:
        key = user_id(principal.tenant_id, principal.subject)
        first = key not in self._known  # shown in /users at once, not a minute later
        if first:
            if len(self._known) > 100_000:
                self._known.clear()  # memory stays bounded; a person forgotten here is written once more
            self._known.add(key)
        seen.note(key, (principal, datetime.now(UTC)), soon=first)

    async def close(self) -> None:
        if self.api_keys is not None:
            await self.api_keys.close()
        if self.seen is not None:
            await self.seen.close()


def _challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    value = f'Bearer realm="{REALM}"'
    if error:
        value += f', error="{error}"'
    if description:
        value += ', error_description="{}"'.format(description.replace('"', "'"))
    return {"WWW-Authenticate": value}


def refusal(exc: AuthError, credentials_given: bool) -> HTTPException:
    """The HTTP answer of an AuthError: 401 with a challenge (RFC 6750 §3), 403, or 503."""
    if isinstance(exc, InvalidCredentials):
        headers = _challenge("invalid_token", str(exc)) if credentials_given else _challenge()
        return HTTPException(401, str(exc), headers=headers)
    if isinstance(exc, IssuerUnavailable):
        return HTTPException(503, str(exc), headers={"Retry-After": "5"})
    return HTTPException(403, str(exc))


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency answering the caller, who must hold one of `roles` (any caller when none is given)."""
    wanted = frozenset(Role(role) for role in roles)
    names = " or ".join(sorted(wanted))

    async def caller(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
        api_key: Annotated[str | None, Security(API_KEY)],
        x_tenant_id: Annotated[
            str | None,
            Header(
                description="The tenant a service's call acts for, or the tenant of a call without credentials "
                "while authentication is off; anyone else's tenant is that of their credentials."
            ),
        ] = None,
    ) -> Principal:
        credential = api_key or (bearer.credentials if bearer is not None else None)
        if x_tenant_id is not None and not _TENANT.match(x_tenant_id):
            raise HTTPException(422, "X-Tenant-Id: letters, digits, '_', '.' and '-', at most 64")
        authenticator: Authenticator | None = getattr(request.app.state, "authenticator", None)
        if authenticator is None:
            raise RuntimeError("no app.state.authenticator: build the app with publipost_runtime's Service")
        try:
            principal = await authenticator.authenticate(credential, x_tenant_id)
        except AuthError as exc:
            raise refusal(exc, credentials_given=credential is not None) from exc
        if not principal.has_any(wanted):
            raise HTTPException(403, f"this needs the role {names}")
        request.state.principal = principal
        return principal

    caller.__name__ = f"require_{'_or_'.join(sorted(wanted)) or 'caller'}"
    caller.accepts = wanted  # type: ignore[attr-defined]  # the roles a route takes, for tests
    return caller


def principal_of(request: Request) -> Principal | None:
    """The caller a `require` dependency of this request found (for logs and audit), if any ran."""
    return getattr(request.state, "principal", None)
