"""Identity and access: who calls (a Principal read from a bearer token of the OpenID Connect issuer, or an
API key), what they may do (roles), and the credentials a service carries when it calls another.
docs/identity.md tells how it works and how to point Publipost at Keycloak, Entra ID or Dex."""

from .access import OUTCOME_ROLES, READ_ROLES, START_ROLES, Admin, Anyone, Operator, OutcomeReader, Reader, Starter
from .api_keys import ApiKey, ApiKeyRepository, ApiKeyVerifier, NewApiKey
from .client import ClientCredentials, service_client, service_credentials
from .dependency import Authenticator, principal_of, require
from .errors import AuthError, Forbidden, InvalidCredentials, IssuerUnavailable
from .issuer import Issuer, KeySet
from .principal import PEOPLE_ROLES, Principal, PrincipalKind, Role
from .routes import router as api_keys_router
from .tokens import TokenVerifier
from .user_routes import router as users_router
from .users import User, UserRepository

__all__ = [
    "OUTCOME_ROLES",
    "PEOPLE_ROLES",
    "READ_ROLES",
    "START_ROLES",
    "Admin",
    "Anyone",
    "ApiKey",
    "ApiKeyRepository",
    "ApiKeyVerifier",
    "AuthError",
    "Authenticator",
    "ClientCredentials",
    "Forbidden",
    "InvalidCredentials",
    "Issuer",
    "IssuerUnavailable",
    "KeySet",
    "NewApiKey",
    "Operator",
    "OutcomeReader",
    "Principal",
    "PrincipalKind",
    "Reader",
    "Role",
    "Starter",
    "TokenVerifier",
    "User",
    "UserRepository",
    "api_keys_router",
    "principal_of",
    "require",
    "service_client",
    "service_credentials",
    "users_router",
]
