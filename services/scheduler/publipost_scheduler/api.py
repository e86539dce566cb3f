import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from publipost_http import Paging, TenantId
from pydantic import AwareDatetime, BaseModel, Field

from .context import Context
from .domain import CampaignConflict, CampaignStatus, pause, resume

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


class CampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    mailing_id: str = Field(min_length=1, max_length=128, description="The mailing to send.")
    once_at: AwareDatetime = Field(description="When to send, with its time zone; a time past sends at once.")
    subject: str = Field(default="{document_name}", max_length=998)
    body: str = Field(default="Please find your document attached.\n")
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    reply_to: str | None = None


class OccurrenceView(BaseModel):
    at: datetime
    dispatch_id: str
    announced_at: datetime | None


class CampaignView(CampaignIn):
    id: str
    status: CampaignStatus
    next_run_at: datetime | None
    created_at: datetime
    occurrences: list[OccurrenceView] = Field(default_factory=list)


def _view(doc: dict[str, Any], occurrences: list[dict[str, Any]] | None = None) -> CampaignView:
    return CampaignView(
        id=doc["_id"],
        **{k: doc[k] for k in CampaignIn.model_fields},
        status=doc["status"],
        next_run_at=doc["next_run_at"],
        created_at=doc["created_at"],
        occurrences=[OccurrenceView(**o) for o in occurrences or []],
    )


@router.post("", status_code=201, response_model=CampaignView)
async def create_campaign(ctx: Context, tenant_id: TenantId, body: CampaignIn) -> CampaignView:
    once_at = body.once_at.astimezone(UTC)
    doc = {
        "_id": str(uuid.uuid4()),
        "tenant_id": tenant_id,
        **body.model_dump(),
        "once_at": once_at,
        "next_run_at": once_at,
        "status": CampaignStatus.ACTIVE,
        "created_at": datetime.now(UTC),
    }
    await ctx.campaigns.add(doc)
    return _view(doc)


@router.get("", response_model=list[CampaignView])
async def list_campaigns(
    ctx: Context,
    tenant_id: TenantId,
    paging: Paging,
) -> list[CampaignView]:
    """The tenant's campaigns, newest first."""
    return [_view(d) for d in await ctx.campaigns.page(tenant_id, skip=paging.skip, limit=paging.per_page)]


@router.get("/{campaign_id}", response_model=CampaignView)
async def get_campaign(ctx: Context, tenant_id: TenantId, campaign_id: str) -> CampaignView:
    doc = await _campaign(ctx, tenant_id, campaign_id)
    return _view(doc, await ctx.occurrences.of_campaign(campaign_id))


@router.post("/{campaign_id}/pause", response_model=CampaignView)
async def pause_campaign(ctx: Context, tenant_id: TenantId, campaign_id: str) -> CampaignView:
    return await _change_status(ctx, tenant_id, campaign_id, pause)


@router.post("/{campaign_id}/resume", response_model=CampaignView)
async def resume_campaign(ctx: Context, tenant_id: TenantId, campaign_id: str) -> CampaignView:
    return await _change_status(ctx, tenant_id, campaign_id, resume)


@router.delete("/{campaign_id}", status_code=204)
async def delete_campaign(ctx: Context, tenant_id: TenantId, campaign_id: str) -> None:
    if not await ctx.campaigns.delete(tenant_id, campaign_id):
        raise HTTPException(404, detail=f"no campaign {campaign_id!r}")


async def _campaign(ctx: Context, tenant_id: str, campaign_id: str) -> dict[str, Any]:
    doc = await ctx.campaigns.get(tenant_id, campaign_id)
    if doc is None:
        raise HTTPException(404, detail=f"no campaign {campaign_id!r}")
    return doc


async def _change_status(ctx: Context, tenant_id: str, campaign_id: str, change: Any) -> CampaignView:
    doc = await _campaign(ctx, tenant_id, campaign_id)
    try:
        status = change(CampaignStatus(doc["status"]))
    except CampaignConflict as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    updated = await ctx.campaigns.set_status(tenant_id, campaign_id, doc["status"], status)
    if updated is None:
        raise HTTPException(409, detail="the campaign changed meanwhile; read it again")
    return _view(updated)
