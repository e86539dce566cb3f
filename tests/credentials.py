"""Real credentials for the tests: tokens of a test issuer, which the services check as they check any
issuer's (signature against its published key, iss, aud, exp), with authentication required.

The issuer is the local stack's development issuer (publipost_localstack.dev_issuer) with a key made for
this test run. Its key exists from import on, so a test module can write `ACME = credentials("acme")` at
its top; the `test_issuer` session fixture (tests/conftest.py) serves its key set and token endpoint, and
`make_settings` points every service at it, with the service's own client for calls to other services.
"""

import secrets
from collections.abc import Iterable

from joserfc.jwk import ECKey
from publipost_auth import PEOPLE_ROLES, Role
from publipost_localstack.dev_issuer import ALGORITHM, SERVICE_ROLES, DevIssuer, client_id_of
from publipost_localstack.stack import SERVICES

ISSUER_URL = "https://issuer.publipost.test"  # the tokens' `iss`; the key set and token endpoint are served locally
TOKEN_TTL_S = 6 * 3600  # tokens made at import outlive the longest session
SERVICE_SECRET = secrets.token_urlsafe(24)  # every service's client secret at the test issuer

ISSUER = DevIssuer(
    ISSUER_URL,
    ECKey.generate_key("P-256", {"alg": ALGORITHM, "use": "sig"}, auto_kid=True),
    {
        "clients": {
            client_id_of(service): {"secret": SERVICE_SECRET, "roles": SERVICE_ROLES, "tenant_id": None}
            for service in SERVICES
        },
        "users": {},
    },
    token_ttl_s=TOKEN_TTL_S,
)


def token(
    tenant: str, roles: Iterable[Role | str] = PEOPLE_ROLES, subject: str | None = None, email: str | None = None
) -> str:
    """A bearer token of a person of `tenant` holding `roles` (every role a person can have, by default)."""
    names = sorted(Role(role).value for role in roles)
    claims = {"email": email} if email else {}
    return ISSUER.issue(
        subject or f"test:{tenant}:{'+'.join(names) or 'none'}", "publipost-tests", names, tenant, **claims
    )


def credentials(
    tenant: str, *roles: Role | str, subject: str | None = None, email: str | None = None
) -> dict[str, str]:
    """The headers of a call by a person of `tenant` with `roles` (all of a person's roles when none given)."""
    return {"Authorization": f"Bearer {token(tenant, roles or PEOPLE_ROLES, subject, email)}"}
