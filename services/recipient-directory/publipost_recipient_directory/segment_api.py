"""HTTP API of segments: saved filters and manual selections, and their recipients as merge records."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from publipost_auth import Operator, Reader
from publipost_http import Paging

from .context import Context, DirectoryContext
from .domain import Segment, SegmentNotFound
from .models import SegmentCount, SegmentIn, SegmentView, merge_record
from .repository import SegmentNameTaken

router = APIRouter(prefix="/segments", tags=["segments"])
NDJSON = "application/x-ndjson"


def _defined(segment_id: str, tenant_id: str, body: SegmentIn) -> Segment:
    return Segment.define(segment_id, tenant_id, body.name, body, datetime.now(UTC))


def _conflict(exc: SegmentNameTaken) -> HTTPException:
    return HTTPException(409, detail=[{"loc": ["body", "name"], "msg": str(exc), "type": "conflict"}])


async def _get(ctx: DirectoryContext, tenant_id: str, segment_id: str) -> Segment:
    segment = await ctx.segments.get(tenant_id, segment_id)
    if segment is None:
        raise SegmentNotFound(segment_id)
    return segment


@router.post("", status_code=201, response_model=SegmentView)
async def create_segment(ctx: Context, caller: Operator, body: SegmentIn) -> SegmentView:
    """Save a filter (all its conditions must hold) or a manual selection of customer numbers."""
    segment = _defined(str(uuid.uuid4()), caller.tenant_id, body)
    try:
        await ctx.segments.add(segment)
    except SegmentNameTaken as exc:
        raise _conflict(exc) from exc
    return SegmentView.from_segment(segment)


@router.get("", response_model=list[SegmentView])
async def list_segments(ctx: Context, caller: Reader, paging: Paging) -> list[SegmentView]:
    """The tenant's segments by name."""
    segments = await ctx.segments.list(caller.tenant_id, skip=paging.skip, limit=paging.per_page)
    return [SegmentView.from_segment(s) for s in segments]


@router.get("/{segment_id}", response_model=SegmentView)
async def get_segment(ctx: Context, caller: Reader, segment_id: str) -> SegmentView:
    return SegmentView.from_segment(await _get(ctx, caller.tenant_id, segment_id))


@router.put("/{segment_id}", response_model=SegmentView)
async def replace_segment(ctx: Context, caller: Operator, segment_id: str, body: SegmentIn) -> SegmentView:
    try:
        segment = await ctx.segments.replace(_defined(segment_id, caller.tenant_id, body))
    except SegmentNameTaken as exc:
        raise _conflict(exc) from exc
    if segment is None:
        raise SegmentNotFound(segment_id)
    return SegmentView.from_segment(segment)


@router.delete("/{segment_id}", status_code=204)
async def delete_segment(ctx: Context, caller: Operator, segment_id: str) -> None:
    if not await ctx.segments.delete(caller.tenant_id, segment_id):
        raise SegmentNotFound(segment_id)


@router.get("/{segment_id}/count", response_model=SegmentCount)
async def count_segment(ctx: Context, caller: Reader, segment_id: str) -> SegmentCount:
    """How many recipients the segment holds now."""
    return SegmentCount(count=await ctx.recipients.count((await _get(ctx, caller.tenant_id, segment_id)).query()))


@router.get("/{segment_id}/recipients", response_class=StreamingResponse, responses={200: {"content": {NDJSON: {}}}})
async def stream_segment(ctx: Context, caller: Reader, segment_id: str) -> StreamingResponse:
    """The segment's recipients in customer-number order, one JSON object a line, shaped as merge records
    (`id` is the customer number): store the body as the records file of a merge."""
    query = (await _get(ctx, caller.tenant_id, segment_id)).query()

    async def lines() -> AsyncIterator[bytes]:
        async for recipient in ctx.recipients.stream(query):
            yield (json.dumps(merge_record(recipient), ensure_ascii=False) + "\n").encode()

    return StreamingResponse(lines(), media_type=NDJSON)
