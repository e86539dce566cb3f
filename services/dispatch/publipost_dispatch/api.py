from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from publipost_http import TenantId
from pydantic import BaseModel

from .context import Context
from .domain import FINAL, PENDING, DeliveryState

router = APIRouter(prefix="/dispatches", tags=["dispatches"])


class DispatchView(BaseModel):
    dispatch_id: str
    mailing_id: str
    status: str
    reason: str | None = None
    total: int
    queued: int
    sending: int
    sent: int
    failed: int
    created_at: datetime
    completed_at: datetime | None = None


class DeliveryView(BaseModel):
    document_id: str
    index: int
    document_number: str
    state: str
    to: list[str] = []
    reason: str | None = None
    smtp_reply: str | None = None
    message_id: str | None = None
    attempts: int
    finished_at: datetime | None = None


class DeliveryPage(BaseModel):
    items: list[DeliveryView]
    next_after: int | None


async def _dispatch(ctx: Any, tenant_id: str, dispatch_id: str) -> dict[str, Any]:
    dispatch = await ctx.dispatches.find(tenant_id, dispatch_id)
    if dispatch is None:
        raise HTTPException(404, detail=f"no dispatch {dispatch_id!r} for this tenant")
    return dispatch


@router.get("/{dispatch_id}", response_model=DispatchView)
async def get_dispatch(ctx: Context, tenant_id: TenantId, dispatch_id: str) -> DispatchView:
    """Progress counted per document, not estimated."""
    dispatch = await _dispatch(ctx, tenant_id, dispatch_id)
    counts = {state.value: await ctx.deliveries.count(dispatch["_id"], (state,)) for state in DeliveryState}
    return DispatchView(
        **{k: dispatch.get(k) for k in ("dispatch_id", "mailing_id", "status", "reason", "total", "created_at")},
        completed_at=dispatch.get("completed_at"),
        **counts,
    )


@router.get("/{dispatch_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    ctx: Context,
    tenant_id: TenantId,
    dispatch_id: str,
    outcome: Literal["pending", "final", "sent", "failed"] | None = None,
    after: Annotated[int, Query(ge=-1, description="Index of the last document of the previous page.")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> DeliveryPage:
    dispatch = await _dispatch(ctx, tenant_id, dispatch_id)
    states = {
        None: (*PENDING, *FINAL),
        "pending": PENDING,
        "final": FINAL,
        "sent": (DeliveryState.SENT,),
        "failed": (DeliveryState.FAILED,),
    }[outcome]
    items = [
        DeliveryView(**{k: d.get(k) for k in DeliveryView.model_fields if d.get(k) is not None})
        async for d in ctx.deliveries.in_state(dispatch["_id"], states, after=after, limit=limit)
    ]
    return DeliveryPage(items=items, next_after=items[-1].index if len(items) == limit else None)
