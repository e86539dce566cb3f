"""One function per message merge consumes: load, call the domain, store, publish."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from publipost_bus import Components
from publipost_contracts import (
    CombinedPart,
    DispatchCompleted,
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
from publipost_logging import get_logger
from publipost_storage import BlobNotFound, NewBlob, derived_blob_id

from .clients import TemplateRef
from .context import MergeContext
from .documents_file import write_documents_file
from .domain import (
    DocumentStatus,
    MailingConflict,
    MailingStatus,
    chunked,
    completed_status,
    default_name,
    document_id_for,
    document_summary,
    effective_output,
    fields_records_need,
    header_text_problem,
    mailing_id_for,
    missing_custom_fields,
    missing_record_fields,
    new_mailing,
    record_header_problem,
    regrouped_mailing_id,
    regrouped_names,
    render_context,
    validated_status,
)
from .print_file import build_parts, delete_parts
from .records import BadRecord, iter_records
from .rendering import RenderFailed

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
IN_PROGRESS = (MailingStatus.RENDERING, MailingStatus.CONVERTING)
ANNOUNCED = (MailingStatus.READY, MailingStatus.PENDING_VALIDATION, MailingStatus.FAILED)
log = get_logger(__name__)


async def merge_requested(event: MergeRequested, ctx: MergeContext = Components) -> None:
    """Validate, create the mailing, render one DOCX per record, ask for PDFs in chunks."""
    mailing_id = mailing_id_for(event.tenant_id, event.request_id)
    mailing = await ctx.mailings.get(mailing_id)
    if mailing is not None and mailing["status"] not in IN_PROGRESS:
        log.info("merge request already handled", mailing_id=mailing_id)
        return

    template = await ctx.templates.get(event.tenant_id, event.template_id, event.template_version)
    findings = await _validate(event, ctx, template)
    if findings.problems:
        await ctx.bus.publish(
            MergeRejected.caused_by(event, key="rejected", request_id=event.request_id, problems=findings.refusal())
        )
        return
    assert template is not None

    if mailing is None:
        today = datetime.now(UTC)
        name = event.name or default_name(template.name, today.date())
        mailing = new_mailing(
            mailing_id=mailing_id,
            tenant_id=event.tenant_id,
            request_id=event.request_id,
            correlation_id=event.correlation_id,
            name=name,
            base_name=name,
            template={
                "template_id": template.template_id,
                "template_version": template.version,
                "template_type": template.template_type,
            },
            output=effective_output(event.output, template.auto_pdf),
            status=MailingStatus.RENDERING,
            expected=findings.records,
            validation_required=template.validation_required,
            warnings=[w.model_dump() for w in findings.warnings],
            warnings_count=findings.warnings_count,
        )
        await ctx.mailings.create(mailing)

    output = mailing["output"]
    if output == "pdf":
        # Documents rendered before a crash (or, when converting, not recorded yet) are asked for again;
        # render-pdf reuses the PDFs it stored already.
        await _request_pdfs(event, ctx, mailing_id)
    if mailing["status"] == MailingStatus.RENDERING:
        template_docx = await ctx.storage.blobs.get(template.blob_id, tenant_id=event.tenant_id)
        total = await _render_documents(event, ctx, mailing_id, template_docx, output)
        next_status = MailingStatus.CONVERTING if output == "pdf" else MailingStatus.RENDERING
        await ctx.mailings.move_status(mailing_id, MailingStatus.RENDERING, {"documents": total, "status": next_status})
    await complete_if_done(ctx, mailing_id, causation_id=str(event.event_id), rendering_done=True)


@dataclass
class Findings:
    """What validation found: problems refuse the request; warnings (fields rendered empty) go with it.
    Each list keeps the first LISTED entries and counts the rest, so a bad 100,000-record file makes
    a readable answer, not a message over the size limit."""

    LISTED: ClassVar[int] = MergeCompleted.WARNINGS_LISTED
    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_count: int = 0
    warnings: list[Problem] = field(default_factory=list)
    warnings_count: int = 0

    def problem(self, problem: Problem) -> None:
        self.problems_count += 1
        if len(self.problems) < self.LISTED:
            self.problems.append(problem)

    def warning(self, warning: Problem) -> None:
        self.warnings_count += 1
        if len(self.warnings) < self.LISTED:
            self.warnings.append(warning)

    def refusal(self) -> list[Problem]:
        unlisted = self.problems_count - len(self.problems)
        more = [Problem(field="records", message=f"... and {unlisted} more problems")] if unlisted else []
        return self.problems + more


async def _validate(event: MergeRequested, ctx: MergeContext, template: TemplateRef | None) -> Findings:
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
    if event.name is not None and (problem := header_text_problem("name", event.name)) is not None:
        findings.problem(problem)
    try:
        await _validate_records(event, ctx, needed, findings)
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
    event: MergeRequested, ctx: MergeContext, needed: frozenset[str], findings: Findings
) -> None:
    async for index, record in _enumerate(iter_records(event, ctx.storage.blobs)):
        findings.records += 1
        if isinstance(record, BadRecord):
            findings.problem(Problem(field="records", message=str(record), record_index=record.index))
            continue
        if record.get("id") is None or str(record["id"]).strip() == "":
            findings.problem(Problem(field="records[].id", message="record has no id", record_index=index))
        elif (problem := record_header_problem(index, record)) is not None:
            findings.problem(problem)
        if lacking := missing_record_fields(record, needed):
            finding = Problem(
                field="records[]." + ",".join(lacking),
                message=f"record lacks field(s) the template uses: {', '.join(lacking)}",
                record_index=index,
            )
            if event.missing_fields == "refuse":
                findings.problem(finding)
            else:
                findings.warning(finding.model_copy(update={"message": finding.message + " (rendered empty)"}))


async def _render_documents(
    event: MergeRequested, ctx: MergeContext, mailing_id: str, template: bytes, output: str
) -> int:
    """Render each record not rendered yet (a redelivered request resumes where it stopped), storing them
    a chunk at a time: its DOCX and documents in a few writes, then, for a PDF mailing, the chunk goes to
    render-pdf at once, so conversion runs beside the rendering of the next chunks."""
    done = await ctx.documents.existing_ids(mailing_id)
    today = date.today()
    total = 0
    chunk = RenderedChunk()
    async for index, record in _enumerate(iter_records(event, ctx.storage.blobs)):
        total = index + 1
        document_id = document_id_for(mailing_id, index)
        if document_id in done:
            continue
        assert isinstance(record, dict)  # validated before
        document: dict[str, Any] = {
            "_id": document_id,
            "tenant_id": event.tenant_id,
            "mailing_id": mailing_id,
            **document_summary(index, record),
            "docx_blob_id": None,
            "pdf_blob_id": None,
            "page_count": 0,
            "error": None,
        }
        try:
            docx = await ctx.renderer.render(template, render_context(record, event.custom_fields, today))
        except RenderFailed as exc:
            document.update(status=DocumentStatus.FAILED, error=f"rendering failed: {exc}")
        else:
            # The id is fixed by the document: rendering it again after a crash replaces the file.
            document["docx_blob_id"] = derived_blob_id("docx", document_id)
            document["status"] = DocumentStatus.RENDERED if output == "pdf" else DocumentStatus.CONVERTED
            metadata = {"content_type": DOCX, "tenant_id": event.tenant_id, "mailing_id": mailing_id,
                        "document_id": document_id}
            chunk.blobs.append(NewBlob(document["docx_blob_id"], docx, f"{document['document_number']}.docx", metadata))
        chunk.documents.append(document)
        if len(chunk.documents) == ctx.settings.render_chunk_size:
            await _store_chunk(event, ctx, mailing_id, chunk, rendered=total)
            chunk = RenderedChunk()
    await _store_chunk(event, ctx, mailing_id, chunk, rendered=total)
    return total


@dataclass
class RenderedChunk:
    documents: list[dict[str, Any]] = field(default_factory=list)
    blobs: list[NewBlob] = field(default_factory=list)


async def _store_chunk(
    event: MergeRequested, ctx: MergeContext, mailing_id: str, chunk: RenderedChunk, *, rendered: int
) -> None:
    """Files before the documents that name them; then the chunk's PDFs are asked for."""
    await ctx.storage.blobs.put_many(chunk.blobs)
    await ctx.documents.add_many(chunk.documents)
    to_convert = [d for d in chunk.documents if d["status"] == DocumentStatus.RENDERED]
    if to_convert:
        await _publish_render_request(event, ctx, mailing_id, to_convert)
    await ctx.mailings.update(mailing_id, {"rendered": rendered, "progress_at": datetime.now(UTC)})


async def _request_pdfs(event: MergeRequested, ctx: MergeContext, mailing_id: str) -> None:
    pending = ctx.documents.pending_render(mailing_id)
    async for chunk in chunked(pending, ctx.settings.render_chunk_size):
        await _publish_render_request(event, ctx, mailing_id, chunk)


async def resume_conversion(ctx: MergeContext, mailing: dict[str, Any]) -> None:
    """Ask again for the PDFs of a mailing whose conversion stalled (a render.requested or its answer
    lost), or complete it if none is missing. render-pdf reuses the PDFs it stored already."""
    mailing_id = mailing["_id"]
    resumption = mailing.get("resumptions", 0) + 1
    await ctx.mailings.update(mailing_id, {"resumptions": resumption, "progress_at": datetime.now(UTC)})
    asked = 0
    async for chunk in chunked(ctx.documents.pending_render(mailing_id), ctx.settings.render_chunk_size):
        asked += len(chunk)
        await ctx.bus.publish(
            RenderRequested(
                # Unlike the first requests, these must not be taken for copies of them.
                event_id=deterministic_id("render.resumed", mailing_id, resumption, chunk[0]["_id"]),
                tenant_id=mailing["tenant_id"],
                correlation_id=mailing["correlation_id"],
                mailing_id=mailing_id,
                chunk=chunk[0]["index"] // ctx.settings.render_chunk_size,
                documents=[RenderItem(document_id=d["_id"], docx_blob_id=d["docx_blob_id"]) for d in chunk],
            )
        )
    log.warning("stalled conversion resumed", mailing_id=mailing_id, documents=asked, resumption=resumption)
    await complete_if_done(ctx, mailing_id, causation_id=None, rendering_done=True)


async def _publish_render_request(
    event: MergeRequested, ctx: MergeContext, mailing_id: str, documents: list[dict[str, Any]]
) -> None:
    await ctx.bus.publish(
        RenderRequested.caused_by(
            event,
            key=documents[0]["_id"],
            mailing_id=mailing_id,
            chunk=documents[0]["index"] // ctx.settings.render_chunk_size,
            documents=[RenderItem(document_id=d["_id"], docx_blob_id=d["docx_blob_id"]) for d in documents],
        )
    )


async def documents_rendered(event: DocumentsRendered, ctx: MergeContext = Components) -> None:
    """Record each PDF (or why it failed); the last chunk completes the mailing."""
    if await ctx.mailings.get(event.mailing_id) is None:
        log.info("rendered documents of a deleted mailing ignored", mailing_id=event.mailing_id)
        return
    await ctx.documents.set_many(
        {
            result.document_id: (
                {"status": DocumentStatus.FAILED, "error": f"PDF conversion failed: {result.error}"}
                if result.error
                else {
                    "status": DocumentStatus.CONVERTED,
                    "pdf_blob_id": result.pdf_blob_id,
                    "page_count": result.page_count,
                }
            )
            for result in event.results
        }
    )
    await ctx.mailings.update(event.mailing_id, {"progress_at": datetime.now(UTC)})
    await complete_if_done(ctx, event.mailing_id, causation_id=str(event.event_id), rendering_done=False)


async def complete_if_done(
    ctx: MergeContext, mailing_id: str, *, causation_id: str | None, rendering_done: bool
) -> None:
    """When no document waits any more: build the combined file, settle the mailing, announce it.

    While merge still renders, PDFs of the first chunks come back: only the renderer, once every
    record is rendered (`rendering_done`), or a PDF arriving after it, can complete the mailing.
    Safe to run concurrently and again: the status moves once (compare-and-set),
    and each announcement has an id fixed by the mailing and its status, so a
    second copy is recognised.
    """
    mailing = await ctx.mailings.get(mailing_id)
    if mailing is None or (mailing["status"] == MailingStatus.RENDERING and not rendering_done):
        return
    if await ctx.documents.count(mailing_id, DocumentStatus.RENDERED):
        return
    if mailing["status"] in IN_PROGRESS:
        summary = await _assemble(ctx, mailing)
        summary["status"] = completed_status(
            summary["documents"], summary["failed"], mailing.get("validation_required", False)
        )
        # Parts have ids fixed by the mailing: a handler that loses this race wrote the same files.
        moved = await ctx.mailings.move_status(mailing_id, mailing["status"], summary)
        mailing = moved or await ctx.mailings.get(mailing_id)
        assert mailing is not None
    if mailing["status"] in ANNOUNCED:
        await announce(ctx, mailing, causation_id=causation_id)


async def announce(ctx: MergeContext, mailing: dict[str, Any], *, causation_id: str | None) -> None:
    """merge.completed for the mailing's status; once ready, one document.side_effect per document of a
    non-standard template (a reminder, a notice) so the owning system can record it."""
    common = {
        "tenant_id": mailing["tenant_id"],
        "correlation_id": mailing["correlation_id"],
        "causation_id": causation_id,
    }
    await ctx.bus.publish(
        MergeCompleted(
            event_id=deterministic_id("merge.completed", mailing["_id"], mailing["status"]),
            request_id=mailing["request_id"],
            mailing_id=mailing["_id"],
            name=mailing["name"],
            status=mailing["status"],
            documents=mailing["documents"],
            failed=mailing["failed"],
            parts=[CombinedPart(**part) for part in mailing["parts"]],
            warnings=mailing.get("warnings", []),
            warnings_count=mailing.get("warnings_count", 0),
            **common,
        )
    )
    template_type = mailing.get("template_type", "standard")
    if mailing["status"] != MailingStatus.READY or template_type == "standard" or mailing.get("side_effects_published"):
        return
    async for document in ctx.documents.in_order(mailing["_id"], status=DocumentStatus.CONVERTED):
        await ctx.bus.publish(
            DocumentSideEffect(
                event_id=deterministic_id("document.side_effect", document["_id"]),
                mailing_id=mailing["_id"],
                document_id=document["_id"],
                record_id=document["record_id"],
                template_type=template_type,
                **common,
            )
        )
    await ctx.mailings.update(mailing["_id"], {"side_effects_published": True})


async def validate(
    ctx: MergeContext, tenant_id: str, mailing_id: str, *, approve: bool, reason: str | None
) -> dict[str, Any]:
    """Approve (the mailing becomes ready to send) or reject (kept for inspection, never sent)."""
    mailing = await ctx.mailings.get(mailing_id, tenant_id)
    if mailing is None:
        raise LookupError(f"no mailing {mailing_id!r} for this tenant")
    status = validated_status(mailing["status"], approve)
    changes = {"status": status, "validated_at": datetime.now(UTC), "validation_reason": reason}
    moved = await ctx.mailings.move_status(mailing_id, MailingStatus.PENDING_VALIDATION, changes)
    if moved is None:
        raise MailingConflict("the mailing was validated meanwhile; read it again")
    if approve:
        await announce(ctx, moved, causation_id=None)
    return moved


async def _assemble(ctx: MergeContext, mailing: dict[str, Any]) -> dict[str, Any]:
    """Counts, the print file of every converted document in record order, and the documents file."""
    mailing_id = mailing["_id"]
    documents = await ctx.documents.count(mailing_id)
    failed = await ctx.documents.count(mailing_id, DocumentStatus.FAILED)
    page_limit = await ctx.tenant_settings.page_limit(mailing["tenant_id"], ctx.settings.combined_page_limit)
    parts = await build_parts(ctx.storage, ctx.documents, mailing, page_limit) if failed < documents else []
    documents_file_id = await write_documents_file(ctx.storage, ctx.documents, mailing)
    return {"documents": documents, "failed": failed, "parts": parts, "documents_file_id": documents_file_id}


async def dispatch_completed(event: DispatchCompleted, ctx: MergeContext = Components) -> None:
    """Replace the dispatched mailing by its "sent by e-mail" and "not sent by e-mail" mailings."""
    source = await ctx.mailings.get(event.mailing_id)
    if source is None:
        log.warning("dispatch completed for an unknown mailing", mailing_id=event.mailing_id)
        return
    sent_id = regrouped_mailing_id(source["_id"], event.dispatch_id, "sent")
    not_sent_id = regrouped_mailing_id(source["_id"], event.dispatch_id, "not_sent")
    if source["status"] != MailingStatus.REPLACED:
        failed_ids = [f.document_id for f in event.failures]
        if event.failures_truncated and event.failures_file_id is not None:
            failed_ids = [
                Failure.model_validate_json(line).document_id
                async for line in ctx.storage.blobs.lines(event.failures_file_id, tenant_id=event.tenant_id)
            ]
        sent_name, not_sent_name = regrouped_names(source["base_name"])
        if failed_ids:
            await ctx.mailings.create(_regrouped(source, not_sent_id, not_sent_name, event.dispatch_id, "not_sent"))
            await ctx.documents.reassign(source["_id"], failed_ids, not_sent_id)
        if await ctx.documents.count(source["_id"]):
            await ctx.mailings.create(_regrouped(source, sent_id, sent_name, event.dispatch_id, "sent"))
            await ctx.documents.reassign_rest(source["_id"], sent_id)
        for mailing_id in (sent_id, not_sent_id):
            if (mailing := await ctx.mailings.get(mailing_id)) is not None:
                await ctx.mailings.update(mailing_id, await _assemble(ctx, mailing))
        await delete_parts(ctx.storage, source["parts"])
        await _delete_documents_file(ctx, source)
        await ctx.mailings.update(
            source["_id"],
            {
                "status": MailingStatus.REPLACED,
                "parts": [],
                "documents_file_id": None,
                "replaced_by": [sent_id, not_sent_id],
            },
        )
    sent = await ctx.documents.count(sent_id)
    not_sent = await ctx.documents.count(not_sent_id)
    await ctx.bus.publish(
        MailingRegrouped.caused_by(
            event,
            key="regrouped",
            dispatch_id=event.dispatch_id,
            source_mailing_id=source["_id"],
            sent_mailing_id=sent_id if sent else None,
            not_sent_mailing_id=not_sent_id if not_sent else None,
            sent=sent,
            not_sent=not_sent,
        )
    )


def _regrouped(source: dict[str, Any], mailing_id: str, name: str, dispatch_id: str, outcome: str) -> dict[str, Any]:
    return new_mailing(
        mailing_id=mailing_id,
        tenant_id=source["tenant_id"],
        request_id=f"{source['request_id']}/{dispatch_id}/{outcome}",
        correlation_id=source["correlation_id"],
        name=name,
        base_name=source["base_name"],
        template={k: source.get(k) for k in ("template_id", "template_version", "template_type")},
        output=source["output"],
        status=MailingStatus.READY,
        side_effects_published=True,  # the source mailing's documents were announced already
        regrouped_from={"mailing_id": source["_id"], "dispatch_id": dispatch_id, "outcome": outcome},
    )


async def _enumerate(records: Any) -> Any:
    index = 0
    async for record in records:
        yield index, record
        index += 1


async def delete_mailing(ctx: MergeContext, mailing: dict[str, Any]) -> None:
    """Files first, then the records that point at them: a delete cut short can be run again."""
    async for documents in chunked(ctx.documents.blob_ids(mailing["_id"]), 500):
        await ctx.storage.blobs.delete_many(
            [blob_id for d in documents for blob_id in (d.get("docx_blob_id"), d.get("pdf_blob_id")) if blob_id]
        )
    await delete_parts(ctx.storage, mailing.get("parts", []))
    await _delete_documents_file(ctx, mailing)
    await ctx.documents.delete_of(mailing["_id"])
    await ctx.mailings.delete(mailing["_id"])


async def _delete_documents_file(ctx: MergeContext, mailing: dict[str, Any]) -> None:
    if mailing.get("documents_file_id"):
        await ctx.storage.blobs.delete(mailing["documents_file_id"])
