"""HTTP API of segments: saved filters and manual selections, and their recipients as merge records."""

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from publipost_auth import Operator, Reader
from publipost_http import Paging

from .context import Context, DirectoryContext
from .domain import SegmentDefinition, segment_query
from .models import SegmentCount, SegmentIn, SegmentView, merge_record
from .repository import SegmentNameTaken

router = APIRouter(prefix="/segments", tags=["segments"])
NDJSON = "application/x-ndjson"


def _stored(body: SegmentIn) -> dict[str, Any]:
    # JSON mode: dates in a filter are kept as ISO text, which MongoDB stores as is.
    return body.model_dump(mode="json")


def _conflict(exc: SegmentNameTaken) -> HTTPException:
    return HTTPException(409, detail=[{"loc": ["body", "name"], "msg": str(exc), "type": "conflict"}])


async def _get(ctx: DirectoryContext, tenant_id: str, segment_id: str) -> dict[str, Any]:
    doc = await ctx.segments.get(tenant_id, segment_id)
    if doc is None:
        raise HTTPException(404, detail=f"no segment {segment_id!r} for this tenant")
    return doc


@router.post("", status_code=201, response_model=SegmentView)
async def create_segment(ctx: Context, caller: Operator, body: SegmentIn) -> SegmentView:
    """Save a filter (all its conditions must hold) or a manual selection of customer numbers."""
    try:
        return SegmentView.from_document(await ctx.segments.add(caller.tenant_id, _stored(body)))
    except SegmentNameTaken as exc:
        raise _conflict(exc) from exc


@router.get("", response_model=list[SegmentView])
async def list_segments(ctx: Context, caller: Reader, paging: Paging) -> list[SegmentView]:
    """The tenant's segments by name."""
    docs = await ctx.segments.list(caller.tenant_id, skip=paging.skip, limit=paging.per_page)
    return [SegmentView.from_document(d) for d in docs]


@router.get("/{segment_id}", response_model=SegmentView)
async def get_segment(ctx: Context, caller: Reader, segment_id: str) -> SegmentView:
    return SegmentView.from_document(await _get(ctx, caller.tenant_id, segment_id))


@router.put("/{segment_id}", response_model=SegmentView)
async def replace_segment(ctx: Context, caller: Operator, segment_id: str, body: SegmentIn) -> SegmentView:
    try:
        doc = await ctx.segments.replace(caller.tenant_id, segment_id, _stored(body))
    except SegmentNameTaken as exc:
        raise _conflict(exc) from exc
    if doc is None:
        raise HTTPException(404, detail=f"no segment {segment_id!r} for this tenant")
    return SegmentView.from_document(doc)


@router.delete("/{segment_id}", status_code=204)
async def delete_segment(ctx: Context, caller: Operator, segment_id: str) -> None:
    if not await ctx.segments.delete(caller.tenant_id, segment_id):
        raise HTTPException(404, detail=f"no segment {segment_id!r} for this tenant")


async def _query(ctx: DirectoryContext, tenant_id: str, segment_id: str) -> dict[str, Any]:
    doc = await _get(ctx, tenant_id, segment_id)
    return segment_query(
        tenant_id, SegmentDefinition.model_validate({k: doc.get(k) for k in ("filter", "customer_numbers")})
    )


@router.get("/{segment_id}/count", response_model=SegmentCount)
async def count_segment(ctx: Context, caller: Reader, segment_id: str) -> SegmentCount:
    """How many recipients the segment holds now."""
    return SegmentCount(count=await ctx.recipients.count(await _query(ctx, caller.tenant_id, segment_id)))


@router.get("/{segment_id}/recipients", response_class=StreamingResponse, responses={200: {"content": {NDJSON: {}}}})
async def stream_segment(ctx: Context, caller: Reader, segment_id: str) -> StreamingResponse:
    """The segment's recipients in customer-number order, one JSON object a line, shaped as merge records
    (`id` is the customer number): store the body as the records file of a merge."""
    query = await _query(ctx, caller.tenant_id, segment_id)

    async def lines() -> AsyncIterator[bytes]:
        async for doc in ctx.recipients.stream(query):
            yield (json.dumps(merge_record(doc), ensure_ascii=False) + "\n").encode()

    return StreamingResponse(lines(), media_type=NDJSON)
