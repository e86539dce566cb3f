"""The callers each kind of route accepts (docs/identity.md, "Roles"), named once for every service:

    from publipost_auth import Operator, Reader

    @router.get("/templates")
    async def list_templates(caller: Reader, ...): ...     # caller.tenant_id is the tenant to read

Roles do not imply one another, so each group lists every role it lets through.
"""

from typing import Annotated

from fastapi import Depends

from .dependency import require
from .principal import Principal, Role

READ_ROLES = (Role.ADMIN, Role.OPERATOR, Role.VIEWER)
"""Read anything of the tenant (templates, recipients, campaigns, settings...)."""
OUTCOME_ROLES = (*READ_ROLES, Role.INTEGRATOR)
"""Read mailings, dispatches, sends and their history: what an integrating system follows after starting them."""
START_ROLES = (Role.OPERATOR, Role.INTEGRATOR)
"""Start (or resume) a dispatch or a send: people who operate, and integrating systems."""

Anyone = Annotated[Principal, Depends(require())]
"""Any authenticated caller: reference data that belongs to no tenant (predefined fields, sample files)."""
Reader = Annotated[Principal, Depends(require(*READ_ROLES))]
OutcomeReader = Annotated[Principal, Depends(require(*OUTCOME_ROLES))]
Starter = Annotated[Principal, Depends(require(*START_ROLES))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
"""Sending accounts, API keys, conversion backends and quotas, tenant settings."""
