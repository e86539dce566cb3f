"""One function per message dispatch consumes: load, call the domain, store, publish."""

from datetime import UTC, date, datetime
from email.utils import parseaddr
from typing import Any

from publipost_bus import PermanentFailure
from publipost_contracts import (
    DeliveryRecorded,
    DispatchCompleted,
    DispatchRequested,
    DispatchResumed,
    DocumentSent,
    Event,
    Failure,
    RecipientResolved,
    ResolveRecipient,
    SendRequested,
    deterministic_id,
)
from publipost_logging import get_logger

from .context import DispatchContext
from .domain import (
    PENDING,
    DeliveryState,
    DispatchStatus,
    DocumentFacts,
    UnknownVariable,
    UnsafeHeader,
    Verdict,
    delivery_id_for,
    dispatch_key,
    fill,
    message_id_for,
    verdict_for_reply,
)
from .mail import build_message
from .smtp import SmtpRefused, SmtpUnavailable

log = get_logger(__name__)


class SendDeferred(Exception):
    """A temporary SMTP failure: the bus retries the send after its backoff."""


async def dispatch_requested(event: DispatchRequested, ctx: DispatchContext) -> None:
    """Record one delivery per document of the mailing, then ask for each send on dispatch's own work queue."""
    key = dispatch_key(event.tenant_id, event.dispatch_id)
    await ctx.dispatches.create(
        {
            "_id": key,
            "tenant_id": event.tenant_id,
            "dispatch_id": event.dispatch_id,
            "mailing_id": event.mailing_id,
            "correlation_id": event.correlation_id,
            "subject": event.subject,
            "body": event.body,
            "cc": event.cc,
            "bcc": event.bcc,
            "reply_to": event.reply_to,
            "status": DispatchStatus.FANNING_OUT,
            "total": 0,
            "created_at": datetime.now(UTC),
        }
    )
    dispatch = await ctx.dispatches.get(key)
    assert dispatch is not None
    if dispatch["status"] == DispatchStatus.FANNING_OUT:
        refusal = await _fan_out(event, ctx, dispatch)
        if refusal:
            await ctx.dispatches.move_status(
                key, DispatchStatus.FANNING_OUT, {"status": DispatchStatus.REFUSED, "reason": refusal}
            )
            raise PermanentFailure(f"dispatch {event.dispatch_id} refused: {refusal}")
    # Also after a crash mid-way: ask again for every send still queued (same event ids, so no send twice).
    async for delivery in ctx.deliveries.in_state(key, (DeliveryState.QUEUED,)):
        await ctx.bus.publish(
            SendRequested.caused_by(
                event, key=delivery["document_id"], dispatch_id=event.dispatch_id, document_id=delivery["document_id"]
            )
        )
    await complete_if_done(event, ctx, key)


async def dispatch_resumed(event: DispatchResumed, ctx: DispatchContext) -> None:
    """Send again every delivery still queued: keyed by the resumption, so the inbox does not skip them."""
    key = dispatch_key(event.tenant_id, event.dispatch_id)
    async for delivery in ctx.deliveries.in_state(key, (DeliveryState.QUEUED,)):
        await ctx.bus.publish(
            SendRequested.caused_by(
                event, key=delivery["document_id"], dispatch_id=event.dispatch_id, document_id=delivery["document_id"]
            )
        )
    await complete_if_done(event, ctx, key)


async def _fan_out(event: DispatchRequested, ctx: DispatchContext, dispatch: dict[str, Any]) -> str | None:
    """Returns why the dispatch is refused, or None once every delivery is recorded."""
    mailing = await ctx.merge.mailing(event.tenant_id, event.mailing_id)
    if mailing is None:
        return f"no mailing {event.mailing_id!r} for this tenant"
    if mailing["output"] != "pdf":
        return "only PDF mailings can be e-mailed; this mailing has DOCX documents only"
    if mailing["status"] != "ready":
        return f"mailing {event.mailing_id!r} is {mailing['status']}, not ready to send"
    total = 0
    async for document in ctx.merge.documents(event.tenant_id, event.mailing_id):
        total += 1
        no_pdf = document["pdf_blob_id"] is None
        await ctx.deliveries.add(
            {
                "_id": delivery_id_for(dispatch["_id"], document["id"]),
                "dispatch_key": dispatch["_id"],
                "tenant_id": event.tenant_id,
                "mailing_id": event.mailing_id,
                "mailing_name": mailing["name"],
                "document_id": document["id"],
                "index": document["index"],
                "document_number": document["document_number"],
                "customer_number": document["customer_number"],
                "record_email": document["email"],
                "recipient_name": document["recipient_name"],
                "pdf_blob_id": document["pdf_blob_id"],
                "state": DeliveryState.FAILED if no_pdf else DeliveryState.QUEUED,
                "reason": f"no PDF to attach ({document['error'] or document['status']})" if no_pdf else None,
                "attempts": 0,
                "recipients": [],
                "created_at": datetime.now(UTC),
            }
        )
    await ctx.dispatches.move_status(
        dispatch["_id"], DispatchStatus.FANNING_OUT, {"status": DispatchStatus.SENDING, "total": total}
    )
    return None


async def send_requested(event: SendRequested, ctx: DispatchContext) -> None:
    """Resolve the address, build the e-mail, send it, record the outcome."""
    key = dispatch_key(event.tenant_id, event.dispatch_id)
    delivery = await ctx.deliveries.get(delivery_id_for(key, event.document_id))
    if delivery is None:
        raise PermanentFailure(f"no delivery of document {event.document_id} in dispatch {event.dispatch_id}")
    if delivery["state"] not in PENDING:
        log.info("document already has its outcome", document_id=event.document_id, state=delivery["state"])
        return
    dispatch = await ctx.dispatches.get(key)
    assert dispatch is not None

    resolved = await ctx.bus.request(
        ResolveRecipient.caused_by(
            event, customer_number=delivery["customer_number"], record_email=delivery["record_email"]
        ),
        RecipientResolved,
        timeout_s=ctx.settings.resolve_timeout_s,
    )
    if resolved.email is None:
        await _record(event, ctx, delivery, DeliveryState.FAILED, reason=f"no address: {resolved.reason}")
        return

    facts = DocumentFacts(
        document_number=delivery["document_number"],
        document_name=delivery["mailing_name"],
        recipient_name=delivery["recipient_name"],
        customer_number=delivery["customer_number"],
    )
    to = [resolved.email]
    recipients = to + dispatch["cc"] + dispatch["bcc"]
    message_id = message_id_for(delivery["_id"], parseaddr(ctx.settings.sender)[1].rpartition("@")[2] or "publipost")
    try:
        variables = facts.variables(date.today())
        message = build_message(
            sender=ctx.settings.sender,
            to=to,
            cc=dispatch["cc"],
            reply_to=dispatch["reply_to"],
            subject=fill("subject", dispatch["subject"], variables),
            body=fill("body", dispatch["body"], variables),
            pdf=await ctx.storage.blobs.get(delivery["pdf_blob_id"]),
            pdf_name=f"{delivery['document_number']}.pdf",
            message_id=message_id,
        )
    except (UnsafeHeader, UnknownVariable) as exc:
        await _record(event, ctx, delivery, DeliveryState.FAILED, reason=str(exc), recipients=to)
        return

    attempt = await ctx.deliveries.start_attempt(delivery["_id"], recipients, message_id)
    if attempt is None:
        return  # another replica recorded the outcome meanwhile
    try:
        accepted = await ctx.smtp.send(message, parseaddr(ctx.settings.sender)[1], recipients)
    except (SmtpRefused, SmtpUnavailable) as exc:
        verdict = verdict_for_reply(exc.code) if isinstance(exc, SmtpRefused) else Verdict.RETRY
        if verdict is Verdict.RETRY and attempt["attempts"] < ctx.settings.max_send_attempts:
            raise SendDeferred(str(exc)) from exc
        await _record(event, ctx, delivery, DeliveryState.FAILED, reason=str(exc), recipients=to)
        return
    # The window between the server's acceptance and this write is the only place
    # a crash can cause a second send; that send carries the same Message-ID.
    note = f"; refused: {accepted.refused}" if accepted.refused else ""
    await _record(
        event, ctx, delivery, DeliveryState.SENT, recipients=to, smtp_reply=accepted.reply + note, message_id=message_id
    )


async def _record(
    event: SendRequested,
    ctx: DispatchContext,
    delivery: dict[str, Any],
    state: DeliveryState,
    *,
    reason: str | None = None,
    recipients: list[str] | None = None,
    smtp_reply: str | None = None,
    message_id: str | None = None,
) -> None:
    recorded = await ctx.deliveries.finish(
        delivery["_id"], state, {"reason": reason, "smtp_reply": smtp_reply, "to": recipients or []}
    )
    if recorded:
        await ctx.bus.publish(
            DeliveryRecorded.caused_by(
                event,
                key="recorded",
                dispatch_id=event.dispatch_id,
                document_id=event.document_id,
                outcome=state.value,
                recipients=recipients or [],
                reason=reason,
                smtp_message_id=message_id,
            )
        )
        if state is DeliveryState.SENT:
            await ctx.bus.publish(
                DocumentSent.caused_by(
                    event,
                    key="sent",
                    dispatch_id=event.dispatch_id,
                    mailing_id=delivery["mailing_id"],
                    document_id=event.document_id,
                    document_number=delivery["document_number"],
                    recipients=recipients or [],
                )
            )
    await complete_if_done(event, ctx, delivery["dispatch_key"])


async def complete_if_done(cause: Event, ctx: DispatchContext, key: str) -> None:
    """When every document has its final outcome, announce the dispatch's completion (once per dispatch id)."""
    dispatch = await ctx.dispatches.get(key)
    if dispatch is None or dispatch["status"] not in (DispatchStatus.SENDING, DispatchStatus.COMPLETED):
        return
    if await ctx.deliveries.count(key, PENDING):
        return
    sent = await ctx.deliveries.count(key, (DeliveryState.SENT,))
    failed = await ctx.deliveries.count(key, (DeliveryState.FAILED,))
    failures = [
        Failure(document_id=d["document_id"], reason=d["reason"] or "failed")
        async for d in ctx.deliveries.in_state(key, (DeliveryState.FAILED,), limit=DispatchCompleted.FAILURES_LISTED)
    ]
    completed = {"status": DispatchStatus.COMPLETED, "sent": sent, "failed": failed, "completed_at": datetime.now(UTC)}
    await ctx.dispatches.move_status(key, DispatchStatus.SENDING, completed)
    await ctx.bus.publish(
        DispatchCompleted.caused_by(
            cause,
            event_id=deterministic_id("dispatch.completed", key),
            dispatch_id=dispatch["dispatch_id"],
            mailing_id=dispatch["mailing_id"],
            sent=sent,
            failed=failed,
            failures=failures,
            failures_truncated=failed > len(failures),
        )
    )
