"""render-pdf over HTTP: its LibreOffice workers, each tenant's conversion quota, usage and backend.

A tenant's quota and backend are its own: read by its people, set by its admins; a path naming another
tenant is answered 404, as if that tenant did not exist."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from publipost_auth import Admin, Principal, Reader
from publipost_outbound import OutboundRefused
from pydantic import AnyHttpUrl, BaseModel, Field

from .context import Context, RenderContext
from .domain import Backend, TenantConversionSettings

router = APIRouter(tags=["render-pdf"])
TenantPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Year = Annotated[int | None, Query(ge=2000, le=9999, description="Calendar year; the current one by default.")]


class QuotaUpdate(BaseModel):
    yearly_limit: int | None = Field(ge=0, description="Conversions per calendar year on LibreOffice; null: unlimited.")


class BackendUpdate(BaseModel):
    backend: Backend | None = Field(description="null: the service's default backend.")
    gotenberg_url: AnyHttpUrl | None = Field(default=None, description="Default: the service's Gotenberg.")


class OverflowUpdate(BaseModel):
    backend: Literal[Backend.GOTENBERG] | None = Field(
        description="The paid converter that takes the documents past the yearly quota until the year ends; "
        "null: past the quota, documents are refused."
    )
    gotenberg_url: AnyHttpUrl | None = Field(default=None, description="Default: the service's Gotenberg.")


class QuotaView(BaseModel):
    tenant_id: str
    year: int
    conversions: int = Field(description="Documents converted on LibreOffice this year (the included quota).")
    yearly_limit: int | None = Field(description="null: unlimited.")
    remaining: int | None
    backend: Backend
    limit_applies: bool = Field(description="False when the tenant's backend is external (never refused).")
    past_limit: str = Field(description="What happens past the limit: refused, or the overflow backend's name.")


class OverflowView(BaseModel):
    backend: Backend
    gotenberg_url: str | None


class BackendView(BaseModel):
    tenant_id: str
    backend: Backend
    gotenberg_url: str | None
    own: bool = Field(description="Set for the tenant (else the service's default).")
    external: bool
    overflow: OverflowView | None = Field(description="The paid converter past the yearly limit, if any.")


def _own(caller: Principal, tenant_id: str) -> str:
    """The tenant a path names, when it is the caller's."""
    if tenant_id != caller.tenant_id:
        raise HTTPException(404, detail=f"no tenant {tenant_id!r} here")
    return tenant_id


@router.get("/workers")
async def workers(ctx: Context, caller: Admin) -> list[dict[str, Any]]:
    """Each LibreOffice worker: running, busy, soffice pid, conversions, restarts."""
    return ctx.converter.describe()


@router.get("/quotas/{tenant_id}")
async def quota(tenant_id: TenantPath, ctx: Context, caller: Reader, year: Year = None) -> QuotaView:
    """The tenant's conversions this year, its yearly limit and what is left."""
    return await _usage(ctx, _own(caller, tenant_id), year)


@router.put("/quotas/{tenant_id}")
async def set_quota(tenant_id: TenantPath, update: QuotaUpdate, ctx: Context, caller: Admin) -> QuotaView:
    await ctx.tenants.set_limit(_own(caller, tenant_id), update.yearly_limit)
    return await _usage(ctx, tenant_id, None)


@router.get("/usage")
async def usage(ctx: Context, caller: Reader, year: Year = None) -> QuotaView:
    """The calling tenant's quota and usage (same as /quotas/{tenant})."""
    return await _usage(ctx, caller.tenant_id, year)


@router.get("/backends/{tenant_id}")
async def backend(tenant_id: TenantPath, ctx: Context, caller: Reader) -> BackendView:
    """The backend the tenant's chunks go to."""
    return _backend(ctx, await ctx.tenants.get(_own(caller, tenant_id)))


@router.put("/backends/{tenant_id}")
async def set_backend(tenant_id: TenantPath, update: BackendUpdate, ctx: Context, caller: Admin) -> BackendView:
    _own(caller, tenant_id)
    url = await _gotenberg_url(ctx, update.backend, update.gotenberg_url)
    await ctx.tenants.set_backend(tenant_id, update.backend, url)
    return _backend(ctx, await ctx.tenants.get(tenant_id))


@router.put("/backends/{tenant_id}/overflow")
async def set_overflow(tenant_id: TenantPath, update: OverflowUpdate, ctx: Context, caller: Admin) -> BackendView:
    """Past its yearly quota of LibreOffice conversions, the tenant's documents go to this paid converter instead of
    being refused, and come back to LibreOffice when the next year starts."""
    _own(caller, tenant_id)
    url = await _gotenberg_url(ctx, update.backend, update.gotenberg_url)
    await ctx.tenants.set_overflow(tenant_id, update.backend, url)
    return _backend(ctx, await ctx.tenants.get(tenant_id))


async def _gotenberg_url(ctx: RenderContext, backend: Backend | None, given: AnyHttpUrl | None) -> str | None:
    """The URL an admin gives, checked as every connection to it will be; gotenberg needs one somewhere."""
    url = str(given) if given else None
    if url:
        try:
            await ctx.backends.outbound.check_url(url)
        except OutboundRefused as exc:
            raise RequestValidationError([{"loc": ("body", "gotenberg_url"), "msg": str(exc), "type": "value_error"}]) from exc
    if backend is Backend.GOTENBERG and not (url or ctx.settings.gotenberg_url):
        raise HTTPException(
            422, "the gotenberg backend needs gotenberg_url: the service has no PUBLIPOST_GOTENBERG_URL"
        )
    return url


async def _usage(ctx: RenderContext, tenant_id: str, year: int | None) -> QuotaView:
    year = year or datetime.now(UTC).year
    tenant = await ctx.tenants.get(tenant_id)
    limit = tenant.limit(ctx.settings.yearly_conversion_limit)
    used = await ctx.usage.used(tenant_id, year)
    choice = ctx.backends.choice_for(tenant)
    overflow = ctx.backends.overflow_for(tenant)
    return QuotaView(
        tenant_id=tenant_id,
        year=year,
        conversions=used,
        yearly_limit=limit,
        remaining=None if limit is None else max(0, limit - used),
        backend=choice.backend,
        limit_applies=not choice.external,
        past_limit=overflow.backend.value if overflow and not choice.external else "refused",
    )


def _backend(ctx: RenderContext, tenant: TenantConversionSettings) -> BackendView:
    choice = ctx.backends.choice_for(tenant)
    overflow = ctx.backends.overflow_for(tenant)
    return BackendView(
        tenant_id=tenant.id,
        backend=choice.backend,
        gotenberg_url=choice.gotenberg_url,
        own=tenant.has_own_backend,
        external=choice.external,
        overflow=OverflowView(backend=overflow.backend, gotenberg_url=overflow.gotenberg_url) if overflow else None,
    )
