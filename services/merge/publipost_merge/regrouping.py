"""What merge does with dispatch's outcomes: a dispatched mailing replaced by its "sent by e-mail" and
"not sent by e-mail" mailings, and each document's e-mail state."""

from publipost_bus import Components
from publipost_contracts import (
    DispatchCompleted,
    DocumentSent,
    Failure,
    MailingRegrouped,
)
from publipost_logging import get_logger

from .context import MergeContext
from .documents_file import write_documents_file
from .domain import (
    Document,
    Mailing,
    MailingContents,
    MailingStatus,
    Outcome,
    regrouped_mailing_id,
)
from .mailing_files import contents, delete_documents_file
from .print_file import delete_parts

log = get_logger(__name__)


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
                mailing.hold(await contents(ctx, mailing))
                await ctx.mailings.save(mailing, *MailingContents.FIELDS)
                if earlier:
                    await ctx.storage.blobs.delete(earlier)
        await delete_parts(ctx.storage, source.parts)
        await delete_documents_file(ctx, source)
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
