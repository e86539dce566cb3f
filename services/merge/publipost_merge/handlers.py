"""One function per message merge consumes: load, call the domain, store, publish."""

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from publipost_contracts import (
    DispatchCompleted,
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

from .context import MergeContext
from .domain import (
    DocumentStatus,
    MailingStatus,
    chunked,
    default_name,
    document_id_for,
    document_summary,
    mailing_id_for,
    regrouped_mailing_id,
    regrouped_names,
    render_context,
)
from .records import BadRecord, iter_records
from .rendering import RenderFailed, combine_pdfs, render_docx

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
FINAL = (MailingStatus.READY, MailingStatus.PENDING_VALIDATION, MailingStatus.FAILED)
log = get_logger(__name__)


async def merge_requested(event: MergeRequested, ctx: MergeContext) -> None:
    """Validate, create the mailing, render one DOCX per record, ask for PDFs in chunks."""
    mailing_id = mailing_id_for(event.tenant_id, event.request_id)
    mailing = await ctx.mailings.get(mailing_id)
    if mailing is not None and mailing["status"] in (*FINAL, MailingStatus.REPLACED):
        log.info("merge request already handled", mailing_id=mailing_id)
        return

    template = await ctx.templates.get(event.tenant_id, event.template_id)
    problems = await _problems(event, ctx, template_found=template is not None)
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
            "output": event.output,
            "status": MailingStatus.RENDERING,
            "documents": 0,
            "rendered": 0,
            "failed": 0,
            "combined_blob_id": None,
            "created_at": today,
        }
        await ctx.mailings.create(mailing)

    if mailing["status"] == MailingStatus.RENDERING:
        total = await _render_documents(event, ctx, mailing_id, await ctx.storage.blobs.get(template.blob_id))
        next_status = MailingStatus.CONVERTING if event.output == "pdf" else MailingStatus.RENDERING
        await ctx.mailings.move_status(mailing_id, MailingStatus.RENDERING, {"documents": total, "status": next_status})

    if event.output == "pdf":
        await _request_pdfs(event, ctx, mailing_id)
    await complete_if_done(event, ctx, mailing_id)


async def _problems(event: MergeRequested, ctx: MergeContext, *, template_found: bool) -> list[Problem]:
    problems = []
    if not template_found:
        problems.append(Problem(field="template_id", message=f"no template {event.template_id!r} for this tenant"))
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


async def _render_documents(event: MergeRequested, ctx: MergeContext, mailing_id: str, template: bytes) -> int:
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
            docx = await asyncio.to_thread(
                render_docx, template, render_context(record, event.custom_fields, today)
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
            document["status"] = DocumentStatus.RENDERED if event.output == "pdf" else DocumentStatus.CONVERTED
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
    """When no document waits any more: build the combined file, mark the mailing, announce it.

    Safe to run concurrently and again: the status moves once (compare-and-set),
    and merge.completed has one id per mailing, so a second copy is recognised.
    """
    mailing = await ctx.mailings.get(mailing_id)
    if mailing is None or await ctx.documents.count(mailing_id, DocumentStatus.RENDERED):
        return
    if mailing["status"] not in FINAL:
        summary = await _assemble(ctx, mailing)
        summary["status"] = MailingStatus.READY if summary["failed"] < summary["documents"] else MailingStatus.FAILED
        moved = await ctx.mailings.move_status(mailing_id, mailing["status"], summary)
        if moved is None:  # another handler completed it first
            if summary["combined_blob_id"]:
                await ctx.storage.blobs.delete(summary["combined_blob_id"])
            moved = await ctx.mailings.get(mailing_id)
        mailing = moved
        assert mailing is not None
    await ctx.bus.publish(
        MergeCompleted.caused_by(
            cause,
            event_id=deterministic_id("merge.completed", mailing_id),
            request_id=mailing["request_id"],
            mailing_id=mailing_id,
            name=mailing["name"],
            status=mailing["status"],
            documents=mailing["documents"],
            failed=mailing["failed"],
            combined_blob_id=mailing["combined_blob_id"],
        )
    )


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
        **{k: source[k] for k in ("tenant_id", "correlation_id", "base_name", "template_id", "template_version")},
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
