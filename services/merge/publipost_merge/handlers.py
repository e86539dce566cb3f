"""What merge does to make a mailing, one function per message it consumes (merge.requested,
documents.rendered): load, call the domain, store, publish; and its validation, which ends the making."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TypeVar

from publipost_bus import Components
from publipost_contracts import (
    CombinedPart,
    DocumentSideEffect,
    DocumentsRendered,
    MergeCompleted,
    MergeRejected,
    MergeRequested,
    Problem,
    RenderItem,
    RenderRequested,
    deterministic_id,
)
from publipost_einvoice import InvalidEInvoice
from publipost_logging import get_logger
from publipost_storage import BlobNotFound, NewBlob

from .clients import TemplateRef
from .context import MergeContext
from .domain import (
    Document,
    DocumentStatus,
    Mailing,
    MailingConflict,
    MailingContents,
    MailingNotFound,
    MailingStatus,
    PrintPart,
    chunked,
    document_id_for,
    mailing_id_for,
)
from .einvoices import EInvoicing, format_problem
from .mailing_files import contents, delete_documents_file
from .records import BadRecord, iter_records
from .rendering import RenderFailed
from .repository import PendingConversion
from .request_checks import (
    Findings,
    default_name,
    effective_output,
    fields_records_need,
    header_text_problem,
    missing_custom_fields,
    render_context,
)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
T = TypeVar("T")
log = get_logger(__name__)


async def merge_requested(event: MergeRequested, ctx: MergeContext = Components) -> None:
    """Validate, create the mailing, render one DOCX per record, ask for PDFs in chunks."""
    mailing_id = mailing_id_for(event.tenant_id, event.request_id)
    mailing = await ctx.mailings.get(mailing_id)
    if mailing is not None and not mailing.in_progress:
        log.info("merge request already handled", mailing_id=mailing_id)
        return

    template = await ctx.templates.get(event.tenant_id, event.template_id, event.template_version)
    output, einvoicing = "pdf", None
    if template is not None:
        output = effective_output(event.output, template.auto_pdf)
        profile = (await ctx.tenant_settings.get(event.tenant_id)).facturx_profile
        einvoicing = EInvoicing.of(template, output, profile)
    findings = await _validate(event, ctx, template, output, einvoicing)
    if findings.problems:
        await ctx.bus.publish(
            MergeRejected.caused_by(event, key="rejected", request_id=event.request_id, problems=findings.refusal())
        )
        await _refuse_http_request(ctx, mailing_id, findings.refusal())
        return
    assert template is not None

    if mailing is None:
        mailing = Mailing.requested(
            tenant_id=event.tenant_id,
            request_id=event.request_id,
            correlation_id=event.correlation_id,
            name=event.name or default_name(template.name, datetime.now(UTC).date()),
            template_id=template.template_id,
            template_version=template.version,
            template_type=template.template_type,
            output=output,
            expected=findings.records,
            validation_required=template.validation_required,
            warnings=findings.warnings,
            warnings_count=findings.warnings_count,
            format=event.format,
            facturx_level=einvoicing.profile.value if einvoicing else None,
        )
        await ctx.mailings.create(mailing)

    # Documents rendered before a crash (or, when converting, not recorded yet) are asked for again;
    # render-pdf reuses the PDFs it stored already.
    await _request_pdfs(event, ctx, mailing)
    if mailing.status == MailingStatus.RENDERING:
        template_docx = await ctx.storage.blobs.get(template.blob_id, tenant_id=event.tenant_id)
        mailing.rendering_done(await _render_documents(event, ctx, mailing, template_docx, einvoicing))
        await ctx.mailings.move(mailing, MailingStatus.RENDERING, "documents")
    await complete_if_done(ctx, mailing_id, causation_id=str(event.event_id), rendering_done=True)


async def _refuse_http_request(ctx: MergeContext, mailing_id: str, problems: list[Problem]) -> None:
    """A request made over HTTP keeps why it was refused, for GET /mailings/{id}; its records file goes."""
    request = await ctx.requests.get(mailing_id)
    if request is not None:
        await ctx.requests.refused(mailing_id, problems)
        if request.records_file_id:
            await ctx.storage.blobs.delete(request.records_file_id)


async def _validate(
    event: MergeRequested,
    ctx: MergeContext,
    template: TemplateRef | None,
    output: str,
    einvoicing: EInvoicing | None,
) -> Findings:
    findings = Findings()
    if template is None:
        which = f"version {event.template_version} of template" if event.template_version else "template"
        findings.problem(Problem(field="template_id", message=f"no {which} {event.template_id!r} for this tenant"))
        needed: frozenset[str] = frozenset()
    else:
        if missing := missing_custom_fields(template.custom_fields, event.custom_fields):
            message = f"no value for the template's custom fields: {', '.join(missing)}"
            findings.problem(Problem(field="custom_fields", message=message))
        needed = fields_records_need(template.fields, template.custom_fields)
        if (problem := format_problem(event.format, template, output)) is not None:
            findings.problem(problem)
    if event.name is not None and (problem := header_text_problem("name", event.name)) is not None:
        findings.problem(problem)
    try:
        await _validate_records(event, ctx, needed, findings, einvoicing)
    except BlobNotFound:
        # It will not appear by retrying: the requester hears it now, rather than never.
        message = (
            f"no records file {event.records_file_id!r} for this tenant: it was never stored, has been deleted, "
            "or does not name this tenant in its metadata (tenant_id)"
        )
        findings.problem(Problem(field="records_file_id", message=message))
        return findings
    if findings.records == 0:
        findings.problem(Problem(field="records", message="no records: nothing to merge"))
    return findings


async def _validate_records(
    event: MergeRequested,
    ctx: MergeContext,
    needed: frozenset[str],
    findings: Findings,
    einvoicing: EInvoicing | None,
) -> None:
    async for index, record in _enumerate(iter_records(event, ctx.storage.blobs)):
        if isinstance(record, BadRecord):
            findings.records += 1
            findings.problem(Problem(field="records", message=str(record), record_index=record.index))
            continue
        findings.check_record(index, record, needed, event.missing_fields)
        if einvoicing is not None:
            for problem in einvoicing.problems(index, record):
                findings.problem(problem)


async def _render_documents(
    event: MergeRequested, ctx: MergeContext, mailing: Mailing, template: bytes, einvoicing: EInvoicing | None
) -> int:
    """Render each record not rendered yet (a redelivered request resumes where it stopped), storing them
    a chunk at a time: its DOCX and documents in a few writes, then the chunk goes to render-pdf at once (for
    its PDFs, or a DOCX mailing's page counts), so conversion runs beside the rendering of the next chunks."""
    done = await ctx.documents.existing_ids(mailing.id)
    today = date.today()
    total = 0
    chunk = RenderedChunk()
    async for index, record in _enumerate(iter_records(event, ctx.storage.blobs)):
        total = index + 1
        if document_id_for(mailing.id, index) in done:
            continue
        assert isinstance(record, dict)  # validated before
        try:
            docx = await ctx.renderer.render(template, render_context(record, event.custom_fields, today))
        except RenderFailed as exc:
            document = Document.failed_rendering(mailing, index, record, f"rendering failed: {exc}")
        else:
            document = Document.rendered(mailing, index, record)
            assert document.docx_blob_id is not None
            metadata = {
                "content_type": DOCX,
                "tenant_id": mailing.tenant_id,
                "mailing_id": mailing.id,
                "document_id": document.id,
            }
            chunk.blobs.append(NewBlob(document.docx_blob_id, docx, f"{document.document_number}.docx", metadata))
            if einvoicing is not None:
                try:
                    chunk.blobs += einvoicing.files(record, document.docx_blob_id, document.document_number, metadata)
                except InvalidEInvoice as exc:
                    document = Document.failed_rendering(mailing, index, record, f"e-invoice refused: {exc}")
                    chunk.blobs.pop()
        chunk.documents.append(document)
        if len(chunk.documents) == ctx.settings.render_chunk_size:
            await _store_chunk(event, ctx, mailing, chunk, rendered=total)
            chunk = RenderedChunk()
    await _store_chunk(event, ctx, mailing, chunk, rendered=total)
    return total


@dataclass
class RenderedChunk:
    documents: list[Document] = field(default_factory=list)
    blobs: list[NewBlob] = field(default_factory=list)


async def _store_chunk(
    event: MergeRequested, ctx: MergeContext, mailing: Mailing, chunk: RenderedChunk, *, rendered: int
) -> None:
    """Files before the documents that name them; then the chunk's PDFs (or page counts) are asked for."""
    await ctx.storage.blobs.put_many(chunk.blobs)
    await ctx.documents.add_many(chunk.documents)
    to_convert = [
        PendingConversion(d.id, d.docx_blob_id, d.index)
        for d in chunk.documents
        if d.status == DocumentStatus.RENDERED and d.docx_blob_id is not None
    ]
    if to_convert:
        await _publish_render_request(event, ctx, mailing, to_convert)
    await ctx.mailings.progressed(mailing.id, rendered=rendered)


async def _request_pdfs(event: MergeRequested, ctx: MergeContext, mailing: Mailing) -> None:
    pending = ctx.documents.pending_render(mailing.id)
    async for chunk in chunked(pending, ctx.settings.render_chunk_size):
        await _publish_render_request(event, ctx, mailing, chunk)


async def resume_conversion(ctx: MergeContext, mailing: Mailing) -> None:
    """Ask again for the PDFs of a mailing whose conversion stalled (a render.requested or its answer
    lost), or complete it if none is missing. render-pdf reuses the PDFs it stored already."""
    resumption = mailing.resume()
    await ctx.mailings.save(mailing, "resumptions", "progress_at")
    asked = 0
    async for chunk in chunked(ctx.documents.pending_render(mailing.id), ctx.settings.render_chunk_size):
        asked += len(chunk)
        await ctx.bus.publish(
            RenderRequested(
                # Unlike the first requests, these must not be taken for copies of them.
                event_id=deterministic_id("render.resumed", mailing.id, resumption, chunk[0].id),
                tenant_id=mailing.tenant_id,
                correlation_id=mailing.correlation_id,
                mailing_id=mailing.id,
                chunk=chunk[0].index // ctx.settings.render_chunk_size,
                documents=_render_items(mailing, chunk),
                count_only=mailing.pages_only,
            )
        )
    log.warning("stalled conversion resumed", mailing_id=mailing.id, documents=asked, resumption=resumption)
    await complete_if_done(ctx, mailing.id, causation_id=None, rendering_done=True)


async def _publish_render_request(
    event: MergeRequested, ctx: MergeContext, mailing: Mailing, documents: list[PendingConversion]
) -> None:
    await ctx.bus.publish(
        RenderRequested.caused_by(
            event,
            key=documents[0].id,
            mailing_id=mailing.id,
            chunk=documents[0].index // ctx.settings.render_chunk_size,
            documents=_render_items(mailing, documents),
            count_only=mailing.pages_only,
        )
    )


def _render_items(mailing: Mailing, documents: list[PendingConversion]) -> list[RenderItem]:
    """What render-pdf is asked of each document: its PDF, and its Factur-X for an e-invoice mailing."""
    level = mailing.facturx_level
    return [RenderItem(document_id=d.id, docx_blob_id=d.docx_blob_id, facturx_level=level) for d in documents]


async def documents_rendered(event: DocumentsRendered, ctx: MergeContext = Components) -> None:
    """Record each PDF (or why it failed); the last chunk completes the mailing."""
    if await ctx.mailings.get(event.mailing_id) is None:
        log.info("rendered documents of a deleted mailing ignored", mailing_id=event.mailing_id)
        return
    results = {result.document_id: result for result in event.results}
    moved = []
    for document in await ctx.documents.get_many(list(results)):
        result = results[document.id]
        if result.error:
            if document.conversion_failed(result.error):
                moved.append(document)
        elif document.converted(result.pdf_blob_id, result.page_count, result.backend):
            moved.append(document)
    await ctx.documents.save_many(moved, "status", "pdf_blob_id", "page_count", "error", "converted_by")
    await ctx.mailings.progressed(event.mailing_id)
    await complete_if_done(ctx, event.mailing_id, causation_id=str(event.event_id), rendering_done=False)


async def complete_if_done(
    ctx: MergeContext, mailing_id: str, *, causation_id: str | None, rendering_done: bool
) -> None:
    """When no document waits any more: plan the print file, settle the mailing, announce it.

    While merge still renders, PDFs of the first chunks come back: only the renderer, once every
    record is rendered (`rendering_done`), or a PDF arriving after it, can complete the mailing.
    Safe to run concurrently and again: the status moves once (compare-and-set),
    and each announcement has an id fixed by the mailing and its status, so a
    second copy is recognised.
    """
    mailing = await ctx.mailings.get(mailing_id)
    if mailing is None or (mailing.status == MailingStatus.RENDERING and not rendering_done):
        return
    if await ctx.documents.count(mailing_id, DocumentStatus.RENDERED):
        return
    if mailing.in_progress:
        was = mailing.status
        mailing.complete(await contents(ctx, mailing))
        # Handlers settling the same mailing at once each wrote a documents file: the one stored stays.
        if not await ctx.mailings.move(mailing, was, *MailingContents.FIELDS):
            await delete_documents_file(ctx, mailing)
            mailing = await ctx.mailings.get(mailing_id)
            assert mailing is not None
    if mailing.announced:
        await announce(ctx, mailing, causation_id=causation_id)


async def announce(ctx: MergeContext, mailing: Mailing, *, causation_id: str | None) -> None:
    """merge.completed for the mailing's status; once ready, one document.side_effect per document of a
    non-standard template (a reminder, a notice) so the owning system can record it."""
    common = {"tenant_id": mailing.tenant_id, "correlation_id": mailing.correlation_id, "causation_id": causation_id}
    await ctx.bus.publish(
        MergeCompleted(
            event_id=deterministic_id("merge.completed", mailing.id, mailing.status),
            request_id=mailing.request_id,
            mailing_id=mailing.id,
            name=mailing.name,
            status=mailing.status,
            documents=mailing.documents,
            failed=mailing.failed,
            parts=[_combined_part(part) for part in mailing.parts],
            warnings=mailing.warnings,
            warnings_count=mailing.warnings_count,
            **common,
        )
    )
    if not mailing.side_effects_due:
        return
    async for document in ctx.documents.in_order(mailing.id, status=DocumentStatus.CONVERTED):
        await ctx.bus.publish(
            DocumentSideEffect(
                event_id=deterministic_id("document.side_effect", document.id),
                mailing_id=mailing.id,
                document_id=document.id,
                record_id=document.record_id,
                template_type=mailing.template_type,
                **common,
            )
        )
    mailing.side_effects_published = True
    await ctx.mailings.save(mailing, "side_effects_published")


def _combined_part(part: PrintPart) -> CombinedPart:
    return CombinedPart(number=part.number, blob_id=part.blob_id, documents=part.documents, pages=part.pages)


async def validate(ctx: MergeContext, tenant_id: str, mailing_id: str, *, approve: bool, reason: str | None) -> Mailing:
    """Approve (the mailing becomes ready to send) or reject (kept for inspection, never sent)."""
    mailing = await ctx.mailings.get(mailing_id, tenant_id)
    if mailing is None:
        raise MailingNotFound(f"no mailing {mailing_id!r} for this tenant")
    mailing.validate(approve, reason)
    if not await ctx.mailings.move(mailing, MailingStatus.PENDING_VALIDATION, "validated_at", "validation_reason"):
        raise MailingConflict("the mailing was validated meanwhile; read it again")
    if approve:
        await announce(ctx, mailing, causation_id=None)
    return mailing


async def _enumerate(items: AsyncIterator[T]) -> AsyncIterator[tuple[int, T]]:
    index = 0
    async for item in items:
        yield index, item
        index += 1


