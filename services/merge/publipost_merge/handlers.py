"""One function per message merge consumes: load, call the domain, store, publish."""

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from publipost_contracts import (
    DispatchCompleted,
    DocumentSideEffect,
    DocumentsRendered,
    Event,
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

from .clients import TemplateRef
from .context import MergeContext
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
    mailing_id_for,
    missing_custom_fields,
    regrouped_mailing_id,
    regrouped_names,
    render_context,
    validated_status,
)
from .records import BadRecord, iter_records
from .rendering import RenderFailed, combine_pdfs, render_within

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
IN_PROGRESS = (MailingStatus.RENDERING, MailingStatus.CONVERTING)
ANNOUNCED = (MailingStatus.READY, MailingStatus.PENDING_VALIDATION, MailingStatus.FAILED)
log = get_logger(__name__)


async def merge_requested(event: MergeRequested, ctx: MergeContext) -> None:
    """Validate, create the mailing, render one DOCX per record, ask for PDFs in chunks."""
    mailing_id = mailing_id_for(event.tenant_id, event.request_id)
    mailing = await ctx.mailings.get(mailing_id)
    if mailing is not None and mailing["status"] not in IN_PROGRESS:
        log.info("merge request already handled", mailing_id=mailing_id)
        return

    template = await ctx.templates.get(event.tenant_id, event.template_id, event.template_version)
    problems = await _problems(event, ctx, template)
    if problems:
        await ctx.bus.publish(
            MergeRejected.caused_by(event, key="rejected", request_id=event.request_id, problems=problems)
        )
        return
    assert template is not None

    if mailing is None:
        today = datetime.now(UTC)
        name = event.name or default_name(template.name, today.date())
        mailing = {
            "_id": mailing_id,
            "tenant_id": event.tenant_id,
            "request_id": event.request_id,
            "correlation_id": event.correlation_id,
            "name": name,
            "base_name": name,
            "template_id": template.template_id,
            "template_version": template.version,
            "template_type": template.template_type,
            "validation_required": template.validation_required,
            "output": effective_output(event.output, template.auto_pdf),
            "side_effects_published": False,
            "status": MailingStatus.RENDERING,
            "documents": 0,
            "rendered": 0,
            "failed": 0,
            "combined_blob_id": None,
            "created_at": today,
        }
        await ctx.mailings.create(mailing)

    output = mailing["output"]
    if mailing["status"] == MailingStatus.RENDERING:
        template_docx = await ctx.storage.blobs.get(template.blob_id)
        total = await _render_documents(event, ctx, mailing_id, template_docx, output)
        next_status = MailingStatus.CONVERTING if output == "pdf" else MailingStatus.RENDERING
        await ctx.mailings.move_status(mailing_id, MailingStatus.RENDERING, {"documents": total, "status": next_status})

    if output == "pdf":
        await _request_pdfs(event, ctx, mailing_id)
    await complete_if_done(event, ctx, mailing_id)


async def _problems(event: MergeRequested, ctx: MergeContext, template: TemplateRef | None) -> list[Problem]:
    problems = []
    if template is None:
        which = f"version {event.template_version} of template" if event.template_version else "template"
        problems.append(Problem(field="template_id", message=f"no {which} {event.template_id!r} for this tenant"))
    elif missing := missing_custom_fields(template.custom_fields, event.custom_fields):
        problems.append(
            Problem(field="custom_fields", message=f"no value for the template's custom fields: {', '.join(missing)}")
        )
    count = 0
    async for index, record in _enumerate(iter_records(event, ctx.storage.blobs)):
        count += 1
        if isinstance(record, BadRecord):
            problems.append(Problem(field="records", message=str(record), record_index=record.index))
        elif record.get("id") is None or str(record["id"]).strip() == "":
            problems.append(Problem(field="records[].id", message="record has no id", record_index=index))
    if count == 0:
        problems.append(Problem(field="records", message="no records: nothing to merge"))
    return problems


async def _render_documents(
    event: MergeRequested, ctx: MergeContext, mailing_id: str, template: bytes, output: str
) -> int:
    """Render each record not rendered yet (a redelivered request resumes where it stopped)."""
    done = await ctx.documents.existing_ids(mailing_id)
    today = date.today()
    total = 0
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
            docx = await render_within(
                ctx.settings.render_timeout_s, template, render_context(record, event.custom_fields, today)
            )
        except RenderFailed as exc:
            document.update(status=DocumentStatus.FAILED, error=f"rendering failed: {exc}")
        else:
            document["docx_blob_id"] = await ctx.storage.blobs.put(
                docx,
                f"{document['document_number']}.docx",
                DOCX,
                tenant_id=event.tenant_id,
                mailing_id=mailing_id,
                document_id=document_id,
            )
            document["status"] = DocumentStatus.RENDERED if output == "pdf" else DocumentStatus.CONVERTED
        await ctx.documents.save(document)
        if total % 50 == 0:
            await ctx.mailings.update(mailing_id, {"rendered": total})
    await ctx.mailings.update(mailing_id, {"rendered": total})
    return total


async def _request_pdfs(event: MergeRequested, ctx: MergeContext, mailing_id: str) -> None:
    pending = await ctx.documents.pending_render(mailing_id)
    for number, chunk in enumerate(chunked(pending, ctx.settings.render_chunk_size)):
        await ctx.bus.publish(
            RenderRequested.caused_by(
                event,
                key=chunk[0]["_id"],
                mailing_id=mailing_id,
                chunk=number,
                documents=[RenderItem(document_id=d["_id"], docx_blob_id=d["docx_blob_id"]) for d in chunk],
            )
        )


async def documents_rendered(event: DocumentsRendered, ctx: MergeContext) -> None:
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
    await complete_if_done(event, ctx, event.mailing_id)


async def complete_if_done(cause: Event, ctx: MergeContext, mailing_id: str) -> None:
    """When no document waits any more: build the combined file, settle the mailing, announce it.

    Safe to run concurrently and again: the status moves once (compare-and-set),
    and each announcement has an id fixed by the mailing and its status, so a
    second copy is recognised.
    """
    mailing = await ctx.mailings.get(mailing_id)
    if mailing is None or await ctx.documents.count(mailing_id, DocumentStatus.RENDERED):
        return
    if mailing["status"] in IN_PROGRESS:
        summary = await _assemble(ctx, mailing)
        summary["status"] = completed_status(
            summary["documents"], summary["failed"], mailing.get("validation_required", False)
        )
        moved = await ctx.mailings.move_status(mailing_id, mailing["status"], summary)
        if moved is None:  # another handler completed it first
            if summary["combined_blob_id"]:
                await ctx.storage.blobs.delete(summary["combined_blob_id"])
            moved = await ctx.mailings.get(mailing_id)
        mailing = moved
        assert mailing is not None
    if mailing["status"] in ANNOUNCED:
        await announce(ctx, mailing, causation_id=str(cause.event_id))


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
            combined_blob_id=mailing["combined_blob_id"],
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
    """Counts, and the combined PDF of every converted document in record order."""
    mailing_id = mailing["_id"]
    documents = await ctx.documents.count(mailing_id)
    failed = await ctx.documents.count(mailing_id, DocumentStatus.FAILED)
    combined_blob_id = None
    if mailing["output"] == "pdf" and failed < documents:
        pdfs = [
            await ctx.storage.blobs.get(d["pdf_blob_id"])
            async for d in ctx.documents.in_order(mailing_id, status=DocumentStatus.CONVERTED)
        ]
        combined, _pages = await asyncio.to_thread(combine_pdfs, pdfs)
        combined_blob_id = await ctx.storage.blobs.put(
            combined, f"{mailing['name']}.pdf", "application/pdf", tenant_id=mailing["tenant_id"], mailing_id=mailing_id
        )
    return {"documents": documents, "failed": failed, "combined_blob_id": combined_blob_id}


async def dispatch_completed(event: DispatchCompleted, ctx: MergeContext) -> None:
    """Replace the dispatched mailing by its "sent by e-mail" and "not sent by e-mail" mailings."""
    source = await ctx.mailings.get(event.mailing_id)
    if source is None:
        log.warning("dispatch completed for an unknown mailing", mailing_id=event.mailing_id)
        return
    sent_id = regrouped_mailing_id(source["_id"], event.dispatch_id, "sent")
    not_sent_id = regrouped_mailing_id(source["_id"], event.dispatch_id, "not_sent")
    if source["status"] != MailingStatus.REPLACED:
        failed_ids = [f.document_id for f in event.failures]
        if event.failures_truncated:
            failed_ids = [d async for d in ctx.dispatch.failed_document_ids(event.tenant_id, event.dispatch_id)]
        sent_name, not_sent_name = regrouped_names(source["base_name"])
        if failed_ids:
            await ctx.mailings.create(_regrouped(source, not_sent_id, not_sent_name, event.dispatch_id, "not_sent"))
            await ctx.documents.reassign(source["_id"], failed_ids, not_sent_id)
        if await ctx.documents.count(source["_id"]):
            await ctx.mailings.create(_regrouped(source, sent_id, sent_name, event.dispatch_id, "sent"))
            await ctx.documents.reassign_rest(source["_id"], sent_id)
        for mailing_id in (sent_id, not_sent_id):
            if (mailing := await ctx.mailings.get(mailing_id)) is not None and mailing["combined_blob_id"] is None:
                summary = await _assemble(ctx, mailing)
                await ctx.mailings.update(mailing_id, summary)
        if source["combined_blob_id"]:
            await ctx.storage.blobs.delete(source["combined_blob_id"])
        await ctx.mailings.update(
            source["_id"],
            {"status": MailingStatus.REPLACED, "combined_blob_id": None, "replaced_by": [sent_id, not_sent_id]},
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
    return {
        **{
            k: source.get(k)
            for k in ("tenant_id", "correlation_id", "base_name", "template_id", "template_version", "template_type")
        },
        "side_effects_published": True,  # the source mailing's documents were announced already
        "_id": mailing_id,
        "request_id": f"{source['request_id']}/{dispatch_id}/{outcome}",
        "name": name,
        "output": source["output"],
        "status": MailingStatus.READY,
        "documents": 0,
        "rendered": 0,
        "failed": 0,
        "combined_blob_id": None,
        "regrouped_from": {"mailing_id": source["_id"], "dispatch_id": dispatch_id, "outcome": outcome},
        "created_at": datetime.now(UTC),
    }


async def _enumerate(records: Any) -> Any:
    index = 0
    async for record in records:
        yield index, record
        index += 1
