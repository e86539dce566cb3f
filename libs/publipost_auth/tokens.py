"""Bearer tokens of the issuer: signature against its published keys, then iss, aud, exp and nbf, then the
tenant and roles read from the claims the settings name."""

from typing import Any

from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jws import extract_compact
from publipost_settings import ServiceSettings

from .errors import Forbidden, InvalidCredentials
from .issuer import Issuer, KeySet
from .principal import Principal, PrincipalKind, Role, parse_roles

MAX_TOKEN_BYTES = 16 * 1024  # far above any issuer's access token; a bigger one is refused unread
KEYCLOAK_ROLES_CLAIM = "realm_access.roles"


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, or by dotted path into nested objects (`resource_access.publipost.roles`). A name
    holding a dot itself (some issuers use URLs as claim names) is read as it is first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class TokenVerifier:
    def __init__(self, settings: ServiceSettings, issuer: Issuer) -> None:
        if any(alg.lower() == "none" or alg.startswith("HS") for alg in settings.auth_algorithms):
            raise ValueError("auth_algorithms: unsigned and shared-secret (HS*) tokens are never accepted")
        self.settings = settings
        self.issuer = issuer
        self.keys = KeySet(issuer, settings.auth_jwks_max_age_s, settings.auth_jwks_min_refresh_s)

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims once its signature, issuer, audience and validity period check out."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidCredentials("the token is too large")
        try:
            header = extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError) as exc:
            raise InvalidCredentials("the token is not a signed JWT") from exc
        alg = header.get("alg")
        if alg not in self.settings.auth_algorithms:
            raise InvalidCredentials(f"the token's algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        key = await self.keys.key_for(kid if isinstance(kid, str) else None, alg)
        try:
            claims = jwt.decode(token, key, algorithms=self.settings.auth_algorithms).claims
            jwt.JWTClaimsRegistry(
                leeway=self.settings.auth_leeway_s,
                iss={"essential": True, "value": self.issuer.url},
                aud={"essential": True, "value": self.settings.auth_audience},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(claims)
        except ExpiredTokenError as exc:
            raise InvalidCredentials("the token has expired") from exc
        except MissingClaimError as exc:
            raise InvalidCredentials(f"the token lacks the claim {exc.claim!r}") from exc
        except JoseError as exc:
            raise InvalidCredentials(_reason(exc)) from exc
        except ValueError as exc:  # a payload that is not a JSON object
            raise InvalidCredentials("the token's claims cannot be read") from exc
        return claims

    def principal(self, claims: dict[str, Any], acting_for: str | None) -> Principal:
        """Who the verified claims describe. A service's token (role `service`) acts for the tenant its call
        names; anyone else's tenant is the token's, or the installation's single one (auth_default_tenant)."""
        roles_value = claim_at(claims, self.settings.auth_roles_claim)
        if roles_value is None:
            roles_value = claim_at(claims, KEYCLOAK_ROLES_CLAIM)
        roles = parse_roles(roles_value)
        subject = claims["sub"]
        if Role.SERVICE in roles:
            if not acting_for:
                raise Forbidden("a service's call names the tenant it acts for in X-Tenant-Id")
            return Principal(acting_for, subject, roles, PrincipalKind.SERVICE)
        tenant = claim_at(claims, self.settings.auth_tenant_claim) or self.settings.auth_default_tenant
        if not isinstance(tenant, str) or not tenant:
            raise Forbidden(f"the token names no tenant (claim {self.settings.auth_tenant_claim!r})")
        name = claims.get("name") or claims.get("preferred_username")
        email = claims.get("email")
        return Principal(
            tenant,
            subject,
            roles,
            PrincipalKind.USER,
            name=name if isinstance(name, str) else None,
            email=email if isinstance(email, str) else None,
        )


def _reason(exc: JoseError) -> str:
    if isinstance(exc, BadSignatureError):
        return "the token's signature does not verify"
    claim = getattr(exc, "claim", None)
    if claim == "nbf":
        return "the token is not valid yet (nbf)"
    if claim in ("iss", "aud"):
        return f"the token's {claim} is not the one this service accepts"
    if claim:
        return f"the token's claim {claim!r} is not accepted"
    return f"the token is not accepted ({exc.error})"
