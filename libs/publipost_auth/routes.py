"""/api-keys: a tenant's admins make, list and revoke the API keys of their internal systems.

The service that mounts this router owns the identity database's `api_keys` collection: it lists
`ApiKeyRepository` among its repositories, so the collection's index is made with its others.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from publipost_http import Paging
from pydantic import BaseModel, Field

from .access import Admin
from .api_keys import ApiKey, ApiKeyVerifier
from .dependency import Authenticator
from .principal import Role


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Who uses the key: 'CRM', 'billing batch'…")
    roles: list[Role] = Field(min_length=1, description="One or more of admin, operator, viewer, integrator.")


class ApiKeyView(BaseModel):
    key_id: str
    name: str
    roles: list[Role]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Written in batches: up to a minute behind.")

    @classmethod
    def of(cls, key: ApiKey) -> "ApiKeyView":
        return cls(
            key_id=key.key_id,
            name=key.name,
            roles=sorted(key.roles),
            created_at=key.created_at,
            created_by=key.created_by,
            revoked_at=key.revoked_at,
            last_used_at=key.last_used_at,
        )


class NewApiKeyView(ApiKeyView):
    key: str = Field(description="The key itself, shown this once: Publipost keeps only its hash.")


def _verifier(request: Request) -> ApiKeyVerifier:
    authenticator: Authenticator = request.app.state.authenticator
    if authenticator.api_keys is None:
        raise HTTPException(503, "this service has no database of API keys")
    return authenticator.api_keys


Verifier = Annotated[ApiKeyVerifier, Depends(_verifier)]
router = APIRouter(prefix="/api-keys", tags=["identity"])


@router.post("", status_code=201)
async def create_api_key(caller: Admin, keys: Verifier, body: ApiKeyIn) -> NewApiKeyView:
    if Role.SERVICE in body.roles:
        raise HTTPException(422, "roles: 'service' belongs to Publipost's own services, not to API keys")
    new = await keys.repository.create(caller.tenant_id, body.name, body.roles, created_by=caller.subject)
    return NewApiKeyView(**ApiKeyView.of(new.api_key).model_dump(), key=new.key)


@router.get("")
async def list_api_keys(caller: Admin, keys: Verifier, paging: Paging) -> list[ApiKeyView]:
    """The tenant's keys, newest first, revoked ones included; never their secrets."""
    found = await keys.repository.list(caller.tenant_id, skip=paging.skip, limit=paging.per_page)
    return [ApiKeyView.of(key) for key in found]


@router.delete("/{key_id}")
async def revoke_api_key(caller: Admin, keys: Verifier, key_id: str) -> ApiKeyView:
    """Revoke a key: refused here at once, in other replicas within auth_api_key_cache_s. The record stays."""
    revoked = await keys.repository.revoke(caller.tenant_id, key_id)
    if revoked is None:
        raise HTTPException(404, f"no API key {key_id!r} in this tenant")
    keys.forget(key_id)
    return ApiKeyView.of(revoked)
