"""Who is calling: a tenant, a subject and roles, read from a verified token or API key and nothing else."""

from dataclasses import dataclass
from enum import StrEnum

from publipost_contracts import Requester


class Role(StrEnum):
    """What a caller may do in its tenant (docs/identity.md, "Roles"). A route names the roles it accepts."""

    ADMIN = "admin"  # sending accounts, users, API keys, backends, quotas, tenant settings
    OPERATOR = "operator"  # templates, directory, mailings, sends, campaigns
    VIEWER = "viewer"  # reads
    INTEGRATOR = "integrator"  # starts mailings and reads their outcome
    # Marks a token as another Publipost service's: it acts for the tenant its call names (X-Tenant-Id).
    SERVICE = "service"


PEOPLE_ROLES = frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER, Role.INTEGRATOR})
"""The roles a user or an API key can be given; `service` belongs to Publipost's own services only."""


class PrincipalKind(StrEnum):
    USER = "user"  # a bearer token of the issuer: a person, or an integrating system's client
    API_KEY = "api_key"  # a key made by an admin of the tenant
    SERVICE = "service"  # another Publipost service, with its own credentials
    ANONYMOUS = "anonymous"  # no credentials while auth_required is off: the tenant of X-Tenant-Id, every role


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    subject: str  # the token's `sub`, the API key's id, or the service's client id
    roles: frozenset[Role]
    kind: PrincipalKind
    name: str | None = None  # a person's, as the issuer's token says it (name, preferred_username)
    email: str | None = None

    def has_any(self, roles: frozenset[Role] | set[Role] | tuple[Role, ...]) -> bool:
        return not roles or bool(self.roles & set(roles))

    def requester(self) -> Requester:
        """Who asked, as a dispatch request names them (a sending account's sharing is checked against it)."""
        return Requester(subject=self.subject, roles=sorted(self.roles & PEOPLE_ROLES), email=self.email)


def parse_roles(values: object) -> frozenset[Role]:
    """Roles as an issuer writes them (a list, or one space-separated string); names Publipost does not know
    (an issuer's own, such as Keycloak's offline_access) are left out."""
    if isinstance(values, str):
        values = values.split()
    if not isinstance(values, list | tuple | set | frozenset):
        return frozenset()
    known = {role.value for role in Role}
    return frozenset(Role(value) for value in values if isinstance(value, str) and value in known)
