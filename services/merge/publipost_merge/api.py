from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response, StreamingResponse
from publipost_auth import Admin, Operator, OutcomeReader, Reader
from publipost_contracts.events import FacturxLevel
from publipost_contracts.reads import DocumentPage, MailingView, PartView
from publipost_http import IndexCursor, Paging, content_disposition
from publipost_http.errors import Refused
from publipost_storage import BlobNotFound
from pydantic import BaseModel, Field, field_validator

from . import handlers, mailing_files
from .context import Context, MergeContext
from .documents_file import document_view, write_documents_file
from .domain import DocumentStatus, EmailState, Language, Mailing, MailingNotFound
from .domain import TenantSettings as TenantChoices
from .request_checks import header_text_problem

router = APIRouter(prefix="/mailings", tags=["mailings"])
settings_router = APIRouter(prefix="/settings", tags=["settings"])


class MailingPage(BaseModel):
    items: list[MailingView]
    total: int
    page: int
    per_page: int


def _view(mailing: Mailing) -> MailingView:
    return MailingView(
        id=mailing.id,
        name=mailing.name,
        status=mailing.status,
        sendable=mailing.sendable,
        created_at=mailing.created_at,
        output=mailing.output,
        template_id=mailing.template_id,
        template_version=mailing.template_version,
        expected=mailing.expected,
        documents=mailing.documents,
        rendered=mailing.rendered,
        failed=mailing.failed,
        parts=[PartView(number=p.number, documents=p.documents, pages=p.pages) for p in mailing.parts],
        warnings=[warning.model_dump() for warning in mailing.warnings],
        warnings_count=mailing.warnings_count,
        regrouped_from=asdict(mailing.regrouped_from) if mailing.regrouped_from else None,
        replaced_by=mailing.replaced_by,
        documents_file_id=mailing.documents_file_id,
        converted_by=mailing.converted_by,
        validated_at=mailing.validated_at,
        validation_reason=mailing.validation_reason,
        format=mailing.format,
        einvoices=mailing.facturx_level is not None,
    )


async def _mailing(ctx: MergeContext, tenant_id: str, mailing_id: str) -> Mailing:
    mailing = await ctx.mailings.get(mailing_id, tenant_id)
    if mailing is None:
        # Started over HTTP: not taken by merge yet, or refused by it (and why).
        if (request := await ctx.requests.get(mailing_id, tenant_id)) is not None:
            raise request.not_found()
        raise MailingNotFound(f"no mailing {mailing_id!r} for this tenant")
    return mailing


@router.get("", response_model=MailingPage)
async def list_mailings(
    ctx: Context,
    caller: OutcomeReader,
    paging: Paging,
    status: Annotated[str | None, Query(description="Only mailings in this status.")] = None,
    name: Annotated[str | None, Query(max_length=200, description="Only names containing this, any case.")] = None,
) -> MailingPage:
    """All mailings of the tenant, newest first."""
    items, total = await ctx.mailings.page(
        caller.tenant_id, skip=paging.skip, limit=paging.per_page, status=status, name=name
    )
    return MailingPage(items=[_view(m) for m in items], total=total, page=paging.page, per_page=paging.per_page)


@router.get(
    "/{mailing_id}",
    response_model=MailingView,
    responses={410: {"model": Refused, "description": "Started over HTTP, then refused by merge: it will not exist."}},
)
async def get_mailing(ctx: Context, caller: OutcomeReader, mailing_id: str) -> MailingView:
    mailing = await _mailing(ctx, caller.tenant_id, mailing_id)
    if mailing.sendable and not mailing.documents_file_id:
        # Settled before documents files existed: written on the first read that needs it (of two reads at
        # once, the file stored first stays).
        written = await write_documents_file(ctx.storage, ctx.documents, mailing)
        if not await ctx.mailings.set_documents_file(mailing.id, written):
            await ctx.storage.blobs.delete(written)
        mailing = await _mailing(ctx, caller.tenant_id, mailing_id)
    view = _view(mailing)
    view.converted = await ctx.documents.count(mailing_id, DocumentStatus.CONVERTED)
    return view


class Validation(BaseModel):
    reason: str | None = Field(default=None, max_length=1000, description="Why; kept with the mailing.")


@router.post("/{mailing_id}/approve", response_model=MailingView)
async def approve_mailing(
    ctx: Context, caller: Operator, mailing_id: str, body: Validation | None = None
) -> MailingView:
    """A mailing whose template requires validation becomes ready to send."""
    return await _validate(ctx, caller.tenant_id, mailing_id, approve=True, body=body)


@router.post("/{mailing_id}/reject", response_model=MailingView)
async def reject_mailing(
    ctx: Context, caller: Operator, mailing_id: str, body: Validation | None = None
) -> MailingView:
    """The mailing is marked rejected: its documents stay for inspection and it can never be sent."""
    return await _validate(ctx, caller.tenant_id, mailing_id, approve=False, body=body)


async def _validate(
    ctx: MergeContext, tenant_id: str, mailing_id: str, *, approve: bool, body: Validation | None
) -> MailingView:
    mailing = await handlers.validate(ctx, tenant_id, mailing_id, approve=approve, reason=body.reason if body else None)
    return _view(mailing)


@router.get("/{mailing_id}/documents", response_model=DocumentPage)
async def list_documents(
    ctx: Context,
    caller: OutcomeReader,
    mailing_id: str,
    after: IndexCursor = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    email_state: Annotated[EmailState | None, Query(description="Only documents in this e-mail state.")] = None,
) -> DocumentPage:
    """The mailing's documents in record order, a page at a time (keyset pagination on the index)."""
    await _mailing(ctx, caller.tenant_id, mailing_id)
    documents = ctx.documents.in_order(mailing_id, after=after, limit=limit, email_state=email_state)
    items = [document_view(d) async for d in documents]
    return DocumentPage(items=items, next_after=items[-1].index if len(items) == limit else None)


@router.get("/{mailing_id}/parts/{number}")
async def download_part(ctx: Context, caller: OutcomeReader, mailing_id: str, number: int) -> StreamingResponse:
    """One part of the print file: whole documents one after the other, up to the page limit. Built at its
    first download (a mailing e-mailed whole never pays for it), read from storage at the next ones."""
    mailing = await _mailing(ctx, caller.tenant_id, mailing_id)
    part = mailing.part(number)
    if not part.built_on_download or await ctx.storage.blobs.exists(part.blob_id):
        return await _download(ctx, caller.tenant_id, part.blob_id)
    built = await mailing_files.print_part(ctx, mailing, part)
    headers = {"Content-Disposition": content_disposition(built.filename)}
    return Response(built.data, media_type=built.content_type, headers=headers)


@router.get("/{mailing_id}/documents/{document_id}/content")
async def download_document(
    ctx: Context,
    caller: OutcomeReader,
    mailing_id: str,
    document_id: str,
    format: Annotated[str, Query(pattern="^(pdf|docx)$")] = "pdf",
) -> StreamingResponse:
    """One recipient's document, as PDF (when converted) or as the rendered DOCX."""
    await _mailing(ctx, caller.tenant_id, mailing_id)
    document = await ctx.documents.get(document_id)
    if document is None or document.mailing_id != mailing_id:
        raise HTTPException(404, detail=f"no document {document_id!r} in mailing {mailing_id!r}")
    blob_id = document.pdf_blob_id if format == "pdf" else document.docx_blob_id
    if blob_id is None:
        raise HTTPException(404, detail=f"document {document_id!r} has no {format.upper()} ({document.status})")
    return await _download(ctx, caller.tenant_id, blob_id)


class Rename(BaseModel):
    name: str = Field(min_length=1, max_length=200)

    @field_validator("name")
    @classmethod
    def _no_control_character(cls, value: str) -> str:
        if (problem := header_text_problem("name", value)) is not None:
            raise ValueError(problem.message)
        return value


@router.patch("/{mailing_id}", response_model=MailingView)
async def rename_mailing(ctx: Context, caller: Operator, mailing_id: str, body: Rename) -> MailingView:
    mailing = await _mailing(ctx, caller.tenant_id, mailing_id)
    mailing.name = body.name
    await ctx.mailings.save(mailing, "name")
    return _view(mailing)


@router.delete("/{mailing_id}", status_code=204)
async def delete_mailing(ctx: Context, caller: Operator, mailing_id: str) -> None:
    """The mailing, its documents and every file they had (DOCX, PDF, print file parts)."""
    await mailing_files.delete_mailing(ctx, await _mailing(ctx, caller.tenant_id, mailing_id))


class TenantSettings(BaseModel):
    combined_page_limit: int = Field(ge=1, le=100_000, description="Pages per part of a print file.")
    language: Language = Field(
        default="en",
        description="The language of the names merge gives: the regrouped mailings' \"(sent by e-mail)\" / "
        "\"(envoyé par email)\". A PUT without it sets English.",
    )
    facturx_profile: FacturxLevel = Field(
        default="en16931",
        description="The Factur-X profile of the tenant's invoices: minimum, basicwl (BASIC WL), basic, en16931 "
        "(EN 16931). A PUT without it sets en16931.",
    )


@settings_router.get("", response_model=TenantSettings)
async def get_settings(ctx: Context, caller: Reader) -> TenantSettings:
    chosen = await ctx.tenant_settings.get(caller.tenant_id)
    return TenantSettings(
        combined_page_limit=chosen.page_limit(ctx.settings.combined_page_limit),
        language=chosen.language,
        facturx_profile=chosen.facturx_profile,
    )


@settings_router.put("", response_model=TenantSettings)
async def put_settings(ctx: Context, caller: Admin, body: TenantSettings) -> TenantSettings:
    chosen = TenantChoices(
        id=caller.tenant_id,
        combined_page_limit=body.combined_page_limit,
        language=body.language,
        facturx_profile=body.facturx_profile,
    )
    await ctx.tenant_settings.save(chosen)
    return body


async def _download(ctx: MergeContext, tenant_id: str, blob_id: str) -> StreamingResponse:
    """A file of the tenant's mailing, checked against the tenant the file itself names."""
    try:
        info = await ctx.storage.blobs.info(blob_id, tenant_id=tenant_id)
    except BlobNotFound as exc:
        raise HTTPException(404, detail=f"the file {blob_id!r} is missing") from exc
    return StreamingResponse(
        ctx.storage.blobs.stream(blob_id, tenant_id=tenant_id),
        media_type=info["metadata"]["content_type"],
        headers={"Content-Disposition": content_disposition(info["filename"])},
    )
