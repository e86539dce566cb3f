from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from publipost_http import Paging, TenantId
from pydantic import BaseModel, Field

from . import handlers
from .context import Context, MergeContext
from .domain import DocumentStatus, MailingConflict

router = APIRouter(prefix="/mailings", tags=["mailings"])


class MailingView(BaseModel):
    id: str
    name: str
    status: str
    created_at: datetime
    output: str
    documents: int
    rendered: int
    failed: int
    combined_available: bool
    converted: int | None = Field(default=None, description="PDFs ready so far; in the single-mailing view.")
    regrouped_from: dict[str, str] | None = None
    replaced_by: list[str] | None = None


class MailingPage(BaseModel):
    items: list[MailingView]
    total: int
    page: int
    per_page: int


class DocumentView(BaseModel):
    id: str
    index: int
    record_id: str
    customer_number: str | None
    email: str | None
    document_number: str
    recipient_name: str | None
    status: str
    pdf_blob_id: str | None
    docx_blob_id: str | None
    page_count: int
    error: str | None


class DocumentPage(BaseModel):
    items: list[DocumentView]
    next_after: int | None


def _view(doc: dict[str, Any]) -> MailingView:
    return MailingView(
        id=doc["_id"],
        combined_available=doc.get("combined_blob_id") is not None,
        **{k: doc.get(k) for k in MailingView.model_fields if k not in ("id", "combined_available", "converted")},
    )


async def _mailing(ctx: MergeContext, tenant_id: str, mailing_id: str) -> dict[str, Any]:
    mailing = await ctx.mailings.get(mailing_id, tenant_id)
    if mailing is None:
        raise HTTPException(404, detail=f"no mailing {mailing_id!r} for this tenant")
    return mailing


@router.get("", response_model=MailingPage)
async def list_mailings(
    ctx: Context,
    tenant_id: TenantId,
    paging: Paging,
) -> MailingPage:
    """All mailings of the tenant, newest first."""
    items, total = await ctx.mailings.page(tenant_id, skip=paging.skip, limit=paging.per_page)
    return MailingPage(items=[_view(m) for m in items], total=total, page=paging.page, per_page=paging.per_page)


@router.get("/{mailing_id}", response_model=MailingView)
async def get_mailing(ctx: Context, tenant_id: TenantId, mailing_id: str) -> MailingView:
    view = _view(await _mailing(ctx, tenant_id, mailing_id))
    view.converted = await ctx.documents.count(mailing_id, DocumentStatus.CONVERTED)
    return view


class Validation(BaseModel):
    reason: str | None = Field(default=None, max_length=1000, description="Why; kept with the mailing.")


@router.post("/{mailing_id}/approve", response_model=MailingView)
async def approve_mailing(
    ctx: Context, tenant_id: TenantId, mailing_id: str, body: Validation | None = None
) -> MailingView:
    """A mailing whose template requires validation becomes ready to send."""
    return await _validate(ctx, tenant_id, mailing_id, approve=True, body=body)


@router.post("/{mailing_id}/reject", response_model=MailingView)
async def reject_mailing(
    ctx: Context, tenant_id: TenantId, mailing_id: str, body: Validation | None = None
) -> MailingView:
    """The mailing is marked rejected: its documents stay for inspection and it can never be sent."""
    return await _validate(ctx, tenant_id, mailing_id, approve=False, body=body)


async def _validate(
    ctx: MergeContext, tenant_id: str, mailing_id: str, *, approve: bool, body: Validation | None
) -> MailingView:
    try:
        mailing = await handlers.validate(
            ctx, tenant_id, mailing_id, approve=approve, reason=body.reason if body else None
        )
    except LookupError as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except MailingConflict as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    return _view(mailing)


@router.get("/{mailing_id}/documents", response_model=DocumentPage)
async def list_documents(
    ctx: Context,
    tenant_id: TenantId,
    mailing_id: str,
    after: Annotated[int, Query(ge=-1, description="Index of the last document of the previous page.")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> DocumentPage:
    """The mailing's documents in record order, a page at a time (keyset pagination on the index)."""
    await _mailing(ctx, tenant_id, mailing_id)
    items = [
        DocumentView(id=d["_id"], **{k: d.get(k) for k in DocumentView.model_fields if k != "id"})
        async for d in ctx.documents.in_order(mailing_id, after=after, limit=limit)
    ]
    return DocumentPage(items=items, next_after=items[-1].index if len(items) == limit else None)


@router.get("/{mailing_id}/combined")
async def download_combined(ctx: Context, tenant_id: TenantId, mailing_id: str) -> StreamingResponse:
    """The print file: every document of the mailing one after the other."""
    mailing = await _mailing(ctx, tenant_id, mailing_id)
    if mailing.get("combined_blob_id") is None:
        raise HTTPException(409, detail=f"mailing {mailing_id!r} has no combined file (status {mailing['status']})")
    return StreamingResponse(
        ctx.storage.blobs.stream(mailing["combined_blob_id"]),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{mailing["name"]}.pdf"'},
    )
