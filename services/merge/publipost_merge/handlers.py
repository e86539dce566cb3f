"""One function per message merge consumes: load, call the domain, store, publish."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TypeVar

from publipost_bus import Components
from publipost_contracts import (
    CombinedPart,
    DispatchCompleted,
    DocumentSent,
    DocumentSideEffect,
    DocumentsRendered,
    Failure,
    MailingRegrouped,
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
from .documents_file import write_documents_file
from .domain import (
    Document,
    DocumentStatus,
    Mailing,
    MailingConflict,
    MailingContents,
    MailingNotFound,
    MailingStatus,
    Outcome,
    PrintPart,
    chunked,
    document_id_for,
    mailing_id_for,
    regrouped_mailing_id,
)
from .einvoices import EInvoicing, format_problem
from .print_file import PartFile, build_part, delete_parts, plan_parts
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
    einvoicing = None
    if template is not None:
        output = effective_output(event.output, template.auto_pdf)
        profile = (await ctx.tenant_settings.get(event.tenant_id)).facturx_profile
        einvoicing = EInvoicing.of(template, output, profile)
    findings = await _validate(event, ctx, template, einvoicing)
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
            output=effective_output(event.output, template.auto_pdf),
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
    event: MergeRequested, ctx: MergeContext, template: TemplateRef | None, einvoicing: EInvoicing | None
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
        output = effective_output(event.output, template.auto_pdf)
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
                documents=[
                    RenderItem(document_id=d.id, docx_blob_id=d.docx_blob_id, facturx_level=mailing.facturx_level)
                    for d in chunk
                ],
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
            documents=[
                RenderItem(document_id=d.id, docx_blob_id=d.docx_blob_id, facturx_level=mailing.facturx_level)
                for d in documents
            ],
            count_only=mailing.pages_only,
        )
    )


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
        mailing.complete(await _contents(ctx, mailing))
        # Handlers settling the same mailing at once each wrote a documents file: the one stored stays.
        if not await ctx.mailings.move(mailing, was, *MailingContents.FIELDS):
            await _delete_documents_file(ctx, mailing)
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


async def _contents(ctx: MergeContext, mailing: Mailing) -> MailingContents:
    """Counts, the print file's plan (its files are built on download) and the documents file."""
    documents = await ctx.documents.count(mailing.id)
    failed = await ctx.documents.count(mailing.id, DocumentStatus.FAILED)
    page_limit = (await ctx.tenant_settings.get(mailing.tenant_id)).page_limit(ctx.settings.combined_page_limit)
    return MailingContents(
        documents=documents,
        failed=failed,
        converted_by=await ctx.documents.converted_by(mailing.id),
        parts=await plan_parts(ctx.documents, mailing, page_limit),
        documents_file_id=await write_documents_file(ctx.storage, ctx.documents, mailing),
    )


async def dispatch_completed(event: DispatchCompleted, ctx: MergeContext = Components) -> None:
    """Replace the dispatched mailing by its "sent by e-mail" and "not sent by e-mail" mailings, unless the
    dispatch says not to: a campaign's published mailing stays ready for its next occurrence. The documents a
    re-send of a not-sent mailing sent join its original's sent mailing (updated) instead of making another."""
    if not event.regroup:
        await _not_sent_in_place(ctx, event)
        return
    source = await ctx.mailings.get(event.mailing_id)
    if source is None:
        log.warning("dispatch completed for an unknown mailing", mailing_id=event.mailing_id)
        return
    joinable = await ctx.mailings.get(source.sent_mailing_id) if source.sent_mailing_id else None
    sent_id = source.sent_mailing_for(event.dispatch_id, joinable)
    not_sent_id = regrouped_mailing_id(source.id, event.dispatch_id, Outcome.NOT_SENT)
    if source.status != MailingStatus.REPLACED:
        failures = await _failures(ctx, event)
        language = (await ctx.tenant_settings.get(source.tenant_id)).language
        if failures:
            not_sent_mailing = Mailing.regrouped(
                source, event.dispatch_id, Outcome.NOT_SENT, sent_mailing_id=sent_id, language=language
            )
            await ctx.mailings.create(not_sent_mailing)
            await _not_sent(ctx, source.id, failures, not_sent_id)
        if await ctx.documents.count(source.id):
            if sent_id == source.sent_mailing_id:
                assert joinable is not None
                await delete_parts(ctx.storage, joinable.parts)  # its parts are planned again with the new documents
            else:
                await ctx.mailings.create(Mailing.regrouped(source, event.dispatch_id, Outcome.SENT, language=language))
            await ctx.documents.reassign_rest(source.id, sent_id)
        for mailing_id in (sent_id, not_sent_id):
            if (mailing := await ctx.mailings.get(mailing_id)) is not None:
                earlier = mailing.documents_file_id  # a regrouping cut short and run again wrote one already
                mailing.hold(await _contents(ctx, mailing))
                await ctx.mailings.save(mailing, *MailingContents.FIELDS)
                if earlier:
                    await ctx.storage.blobs.delete(earlier)
        await delete_parts(ctx.storage, source.parts)
        await _delete_documents_file(ctx, source)
        not_sent = await ctx.documents.count(not_sent_id)
        source.replace([m for m, moved in ((sent_id, source.documents - not_sent), (not_sent_id, not_sent)) if moved])
        await ctx.mailings.save(source, "status", "parts", "documents_file_id", "replaced_by")
    not_sent = await ctx.documents.count(not_sent_id)
    sent = source.documents - not_sent  # the sent mailing may hold the documents of earlier sends too
    await ctx.bus.publish(
        MailingRegrouped.caused_by(
            event,
            key="regrouped",
            dispatch_id=event.dispatch_id,
            source_mailing_id=source.id,
            sent_mailing_id=sent_id if sent else None,
            not_sent_mailing_id=not_sent_id if not_sent else None,
            sent=sent,
            not_sent=not_sent,
        )
    )


async def _not_sent_in_place(ctx: MergeContext, event: DispatchCompleted) -> None:
    """The mailing stays as it is: its documents not sent show it, and why (those sent did at each send). Its
    documents file is written again, so the next send of them asks the directory first for a failed address."""
    mailing = await ctx.mailings.get(event.mailing_id)
    failures = await _failures(ctx, event)
    if mailing is None or mailing.tenant_id != event.tenant_id or not failures:
        return
    await _not_sent(ctx, mailing.id, failures, mailing.id)
    earlier = mailing.documents_file_id
    mailing.documents_file_id = await write_documents_file(ctx.storage, ctx.documents, mailing)
    await ctx.mailings.save(mailing, "documents_file_id")
    if earlier:
        await ctx.storage.blobs.delete(earlier)


async def _failures(ctx: MergeContext, event: DispatchCompleted) -> list[Failure]:
    """Every document the dispatch did not send: those the event lists, or its file when they are too many."""
    if not (event.failures_truncated and event.failures_file_id is not None):
        return list(event.failures)
    return [
        Failure.model_validate_json(line)
        async for line in ctx.storage.blobs.lines(event.failures_file_id, tenant_id=event.tenant_id)
    ]


async def _not_sent(ctx: MergeContext, source_id: str, failures: list[Failure], not_sent_id: str) -> None:
    """Move the failed documents to the not-sent mailing, each with why it was not sent, a thousand a write."""
    for start in range(0, len(failures), 1000):
        given = {f.document_id: f for f in failures[start : start + 1000]}
        moved = [d for d in await ctx.documents.get_many(list(given)) if d.mailing_id in (source_id, not_sent_id)]
        for document in moved:
            document.not_sent_by_email(given[document.id].reason, given[document.id].kind)
            document.mailing_id = not_sent_id
        await ctx.documents.save_many(moved, "mailing_id", *Document.EMAIL_FIELDS)


async def document_sent(event: DocumentSent, ctx: MergeContext = Components) -> None:
    """The document shows when and to whom it was sent: one read and one write per document sent, at the pace
    dispatch sends, rather than a pass over the mailing's documents when the dispatch completes."""
    document = await ctx.documents.get(event.document_id)
    if document is None or document.tenant_id != event.tenant_id:
        log.info("sent document unknown (deleted since?)", document_id=event.document_id)
        return
    document.sent_by_email(event.occurred_at, event.recipients)
    await ctx.documents.save_many([document], *Document.EMAIL_FIELDS)


async def print_part(ctx: MergeContext, mailing: Mailing, part: PrintPart) -> PartFile:
    """Build a part of the print file at its first download, and store it for the next ones."""
    built = await build_part(ctx.storage, ctx.documents, mailing, part)
    # Regrouped or deleted while it was built: its file would be left to no one.
    now = await ctx.mailings.get(mailing.id)
    if now is None or part not in now.parts:
        await delete_parts(ctx.storage, [part])
    return built


async def _enumerate(items: AsyncIterator[T]) -> AsyncIterator[tuple[int, T]]:
    index = 0
    async for item in items:
        yield index, item
        index += 1


async def delete_mailing(ctx: MergeContext, mailing: Mailing) -> None:
    """Files first, then the records that point at them: a delete cut short can be run again."""
    async for blob_ids in chunked(ctx.documents.blob_ids(mailing.id), 1000):
        await ctx.storage.blobs.delete_many(blob_ids)
    await delete_parts(ctx.storage, mailing.parts)
    await _delete_documents_file(ctx, mailing)
    await ctx.documents.delete_of(mailing.id)
    if (request := await ctx.requests.get(mailing.id)) is not None:  # started over HTTP: its records file too
        if request.records_file_id:
            await ctx.storage.blobs.delete(request.records_file_id)
        await ctx.requests.delete(mailing.id)
    await ctx.mailings.delete(mailing.id)


async def _delete_documents_file(ctx: MergeContext, mailing: Mailing) -> None:
    if mailing.documents_file_id:
        await ctx.storage.blobs.delete(mailing.documents_file_id)
