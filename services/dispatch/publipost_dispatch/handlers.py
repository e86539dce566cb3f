"""One function per message dispatch consumes: load, call the domain, store, publish."""

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from publipost_bus import PermanentFailure
from publipost_contracts import (
    DeliveryRecorded,
    DispatchCompleted,
    DispatchPaused,
    DispatchRequested,
    DispatchResumed,
    DocumentSent,
    Event,
    Failure,
    SendRequested,
    deterministic_id,
)
from publipost_logging import get_logger
from publipost_refusals import Conflict, NotFound, Refusal
from publipost_storage import BlobNotFound

from .accounts import NoSealKey
from .context import DispatchContext
from .delivery import Content, deliver, dispatch_delivery, outcome_fields
from .domain import (
    COMPLETABLE,
    FINAL,
    NOT_SENT,
    PENDING,
    Addressing,
    BadTemplate,
    DeliveryState,
    DispatchStatus,
    DocumentFacts,
    EmailText,
    InvalidAddress,
    UnknownVariable,
    UnsafeHeader,
    attachment_name,
    check_message,
    delivery_id_for,
    dispatch_key,
    should_pause,
)
from .limits import DailyCapReached
from .mail import pdf_attachment

log = get_logger(__name__)


class SendDeferred(Exception):
    """A temporary failure: the bus retries the send after its backoff."""


# --- dispatch.requested: check, fan out -------------------------------------------------


async def dispatch_requested(event: DispatchRequested, ctx: DispatchContext) -> None:
    """Record one delivery per document of the mailing and ask for each send on dispatch's own work queue,
    which every replica consumes: the sends, not the fan-out, are shared."""
    key = dispatch_key(event.tenant_id, event.dispatch_id)
    await ctx.dispatches.create(
        {
            "_id": key,
            "tenant_id": event.tenant_id,
            "dispatch_id": event.dispatch_id,
            "mailing_id": event.mailing_id,
            "correlation_id": event.correlation_id,
            "account_id": event.account_id,
            "document_type": event.document_type,
            "to": event.to,
            "cc": event.cc,
            "bcc": event.bcc,
            "reply_to": event.reply_to,
            "separate_sends": event.separate_sends,
            "copy_to_sender": event.copy_to_sender,
            "status": DispatchStatus.FANNING_OUT,
            "total": 0,
            "errors": 0,
            "resumptions": 0,
            "created_at": datetime.now(UTC),
            # What the sweep needs to run a fan-out again whose message was lost (see sweeper.py).
            "request": event.model_dump(mode="json"),
            "progress_at": datetime.now(UTC),
        }
    )
    dispatch = await ctx.dispatches.get(key)
    assert dispatch is not None
    if dispatch["status"] != DispatchStatus.FANNING_OUT:
        return
    try:
        mailing, text, pause_after = await what_it_sends(event, ctx)
    except Refusal as refusal:
        await ctx.dispatches.move_status(
            key, DispatchStatus.FANNING_OUT, {"status": DispatchStatus.REFUSED, "reason": str(refusal)}
        )
        raise PermanentFailure(f"dispatch {event.dispatch_id} refused: {refusal}") from None
    await ctx.dispatches.update(
        key, {"mailing_name": mailing["name"], "text": text.__dict__, "pause_after_errors": pause_after}
    )
    total = await _fan_out(event, ctx, key, mailing)
    await ctx.dispatches.update(key, {"total": total})
    await ctx.dispatches.move_status(key, DispatchStatus.FANNING_OUT, {"status": DispatchStatus.SENDING})
    await complete_if_done(ctx, key)


async def what_it_sends(event: DispatchRequested, ctx: DispatchContext) -> tuple[dict[str, Any], EmailText, int]:
    """The mailing, its e-mail text and the pause threshold of the dispatch; a Refusal says why it cannot go."""
    check_message(event, ctx.settings.max_recipients_per_send)
    mailing = await ctx.merge.mailing(event.tenant_id, event.mailing_id)
    if mailing is None:
        raise NotFound(f"mailing_id: no mailing {event.mailing_id!r} for this tenant")
    if mailing["output"] != "pdf":
        raise Conflict("only PDF mailings can be e-mailed; this mailing has DOCX documents only")
    if mailing["status"] != "ready":
        raise Conflict(f"mailing {event.mailing_id!r} is {mailing['status']}, not ready to send")
    try:
        account = await ctx.accounts.for_requester(event.tenant_id, event.account_id, event.requested_by)
    except NoSealKey as exc:
        raise Conflict(str(exc)) from None
    text = EmailText(subject=event.subject, body=event.body)
    if event.email_template_id is not None:
        template = await ctx.email_templates.get(event.tenant_id, event.email_template_id)
        if template is None:
            raise NotFound(f"email_template_id: no e-mail template {event.email_template_id!r} for this tenant")
        text = template
    return mailing, text, account.pause_after_errors


async def _fan_out(event: Event, ctx: DispatchContext, key: str, mailing: dict[str, Any]) -> int:
    """Deliveries are written a page at a time and each send asked for right after: a fan-out that runs
    again after a crash inserts what is missing and asks again under the same event ids."""
    total = 0
    page: list[dict[str, Any]] = []

    async def flush() -> None:
        if not page:
            return
        # Each PDF's length, read here a page at a time, lets its send read the PDF in one round trip.
        pdf_ids = [d["pdf_blob_id"] for d in page if d["pdf_blob_id"]]
        files = await ctx.storage.blobs.infos(pdf_ids, tenant_id=event.tenant_id) if pdf_ids else {}
        for d in page:
            if d["pdf_blob_id"] in files:
                d["pdf_length"] = files[d["pdf_blob_id"]]["length"]
        await ctx.deliveries.add_many(page)
        await ctx.dispatches.update(key, {"progress_at": datetime.now(UTC)})
        # A page's sends are published together: one after the other, each waiting for the broker's
        # confirmation, the fan-out (not the sending) would set the pace.
        await asyncio.gather(
            *(
                ctx.bus.publish(
                    SendRequested.caused_by(
                        event, key=d["document_id"], dispatch_id=d["dispatch_id"], document_id=d["document_id"]
                    )
                )
                for d in page
                if d["state"] == DeliveryState.QUEUED
            )
        )
        page.clear()

    dispatch = await ctx.dispatches.get(key)
    assert dispatch is not None
    async for document in ctx.merge.documents(event.tenant_id, mailing["id"]):
        total += 1
        page.append(dispatch_delivery(dispatch, mailing, document))
        if len(page) == 500:
            await flush()
    await flush()
    return total


# --- pause and resume -----------------------------------------------------------------------


async def pause(ctx: DispatchContext, key: str, reason: str) -> None:
    """Stop starting sends: those already queued wait in the database until a person resumes."""
    if not await ctx.dispatches.move_status(
        key, DispatchStatus.SENDING, {"status": DispatchStatus.PAUSED, "reason": reason}
    ):
        return
    dispatch = await ctx.dispatches.get(key)
    assert dispatch is not None
    log.warning("dispatch paused", dispatch_id=dispatch["dispatch_id"], reason=reason)
    await ctx.bus.publish(
        DispatchPaused(
            event_id=deterministic_id("dispatch.paused", key, dispatch["resumptions"]),
            tenant_id=dispatch["tenant_id"],
            correlation_id=dispatch["correlation_id"],
            dispatch_id=dispatch["dispatch_id"],
            mailing_id=dispatch["mailing_id"],
            reason=reason,
            errors=dispatch["errors"],
            sent=await ctx.deliveries.count(key, (DeliveryState.SENT,)),
            failed=await ctx.deliveries.count(key, (DeliveryState.FAILED,)),
        )
    )


async def dispatch_resumed(event: DispatchResumed, ctx: DispatchContext) -> None:
    """Send again every delivery still queued: keyed by the resumption, so the inbox does not skip them."""
    key = dispatch_key(event.tenant_id, event.dispatch_id)
    async for delivery in ctx.deliveries.in_state(key, PENDING):
        await ctx.bus.publish(
            SendRequested.caused_by(
                event, key=delivery["document_id"], dispatch_id=event.dispatch_id, document_id=delivery["document_id"]
            )
        )
    await complete_if_done(ctx, key)


# --- send.requested: one document ------------------------------------------------------------


async def send_requested(event: SendRequested, ctx: DispatchContext) -> None:
    """Claim the document, resolve its address, build the e-mail, send it, record the outcome."""
    key = dispatch_key(event.tenant_id, event.dispatch_id)
    delivery_id = delivery_id_for(key, event.document_id)
    dispatch = await ctx.dispatches.recent(key)
    if dispatch is None:
        raise PermanentFailure(f"no dispatch {event.dispatch_id}")
    if dispatch["status"] in (DispatchStatus.PAUSED, DispatchStatus.REFUSED):
        return  # the delivery stays queued; resuming asks for it again
    holder = ctx.senders.holder
    delivery = await ctx.deliveries.claim_and_get(delivery_id, holder, ctx.settings.send_lease_s)
    if delivery is None:
        delivery = await ctx.deliveries.get(delivery_id)
        if delivery is None:
            raise PermanentFailure(f"no delivery of document {event.document_id} in dispatch {event.dispatch_id}")
        log.info("document already final or being sent", document_id=event.document_id, state=delivery["state"])
        if delivery["state"] in FINAL:
            # The handler that stored the outcome may have died, or lost its broker connection, before
            # announcing it: announced again, under the same event ids (a consumer that has them skips them).
            await announce_stored(ctx, delivery)
            ctx.completions.soon(key)
        return
    ctx.held.add(delivery_id)
    try:
        with ctx.completions.sending(key):
            await _send(event, ctx, dispatch, delivery)
    except DailyCapReached as exc:
        await ctx.deliveries.release(delivery_id, holder, str(exc))
        await pause(ctx, key, f"{exc}; resume tomorrow")
    except TimeoutError:
        await _retry_or_fail(ctx, delivery, "the recipient directory did not answer in time")
    except (SendDeferred, PermanentFailure):
        raise
    except Exception as exc:
        # Unforeseen (the database or the broker gone): give the document back so a retry can claim it. If
        # the database cannot take that either, the lease, no longer renewed, lapses and the sweep asks again.
        await ctx.deliveries.release(delivery_id, holder, repr(exc))
        raise
    finally:
        ctx.held.discard(delivery_id)


async def _send(event: SendRequested, ctx: DispatchContext, dispatch: dict[str, Any], delivery: dict[str, Any]) -> None:
    account = await ctx.accounts.get(dispatch["tenant_id"], dispatch["account_id"])
    facts = DocumentFacts(
        document_number=delivery["document_number"],
        document_name=delivery["mailing_name"],
        recipient_name=delivery["recipient_name"],
        customer_number=delivery["customer_number"],
    )
    try:
        subject, body, html_body = EmailText(**dispatch["text"]).render(facts.variables(date.today()))
    except (UnsafeHeader, UnknownVariable, BadTemplate) as exc:
        await record(ctx, delivery, DeliveryState.FAILED, reason=str(exc))
        return

    cc = list(dispatch["cc"])
    if dispatch["to"]:
        to = list(dispatch["to"])
    else:
        resolved = await ctx.resolver.resolve(
            event.tenant_id,
            event.correlation_id,
            customer_number=delivery["customer_number"],
            record_email=delivery["record_email"],
        )
        if resolved.email is None:
            await record(ctx, delivery, DeliveryState.FAILED, reason=f"no address: {resolved.reason}", subject=subject)
            return
        to = [resolved.email]
        cc += resolved.cc
    addressing = Addressing(
        to=to,
        cc=cc,
        bcc=list(dispatch["bcc"]),
        sender_copy=account.from_address if dispatch["copy_to_sender"] else None,
        separate=dispatch["separate_sends"],
    )
    try:
        addressing = addressing.checked()
        attachment = pdf_attachment(
            await ctx.pdfs.get(delivery["tenant_id"], delivery["pdf_blob_id"], delivery.get("pdf_length")),
            attachment_name(delivery["document_number"]),
        )
    except (UnsafeHeader, InvalidAddress) as exc:
        await record(ctx, delivery, DeliveryState.FAILED, reason=str(exc), subject=subject, addressing=addressing)
        return
    except BlobNotFound as exc:
        await record(ctx, delivery, DeliveryState.FAILED, reason=f"PDF missing: {exc}", subject=subject)
        return

    content = Content(subject, body, html_body, attachment, reply_to=dispatch["reply_to"] or account.reply_to)
    outcome = await deliver(
        ctx.deliveries,
        ctx.senders.holder,
        ctx.settings.max_send_attempts,
        ctx.senders.for_account(account),
        delivery,
        addressing,
        content,
    )
    for error in outcome.errors:
        errors = await ctx.dispatches.count_error(delivery["dispatch_key"])
        if should_pause(errors, dispatch["pause_after_errors"]):
            await pause(ctx, delivery["dispatch_key"], f"paused after {errors} SMTP errors; last: {error}")
    if outcome.retry:
        await ctx.deliveries.release(delivery["_id"], ctx.senders.holder, outcome.reason or "")
        raise SendDeferred(outcome.reason)
    await record(
        ctx,
        delivery,
        outcome.state,
        reason=outcome.reason,
        subject=subject,
        addressing=addressing,
        smtp_reply=outcome.reply,
        message_id=outcome.message_id,
        stored=outcome.stored,
    )


async def _retry_or_fail(ctx: DispatchContext, delivery: dict[str, Any], reason: str) -> None:
    if delivery["attempts"] >= ctx.settings.max_send_attempts:
        await record(ctx, delivery, DeliveryState.FAILED, reason=reason)
        return
    await ctx.deliveries.release(delivery["_id"], ctx.senders.holder, reason)
    raise SendDeferred(reason)


async def record(
    ctx: DispatchContext,
    delivery: dict[str, Any],
    state: DeliveryState,
    *,
    reason: str | None = None,
    subject: str | None = None,
    addressing: Addressing | None = None,
    smtp_reply: str | None = None,
    message_id: str | None = None,
    stored: bool | None = None,
) -> None:
    """Store the outcome (unless `deliver` did, right after the server's answer), announce it, and
    complete the dispatch when it was the last one. Only the handler whose write moved the delivery to
    its final state goes on (a redelivered copy of its message announces it again: see send_requested)."""
    if stored is None:
        changes = outcome_fields(delivery, state, reason, subject, addressing, smtp_reply, message_id)
        stored = await ctx.deliveries.finish(delivery["_id"], state, changes)
    if not stored:
        return
    await announce(ctx, delivery, state, reason=reason, addressing=addressing, message_id=message_id)
    if delivery["kind"] == "dispatch":
        ctx.completions.soon(delivery["dispatch_key"])


async def announce_stored(ctx: DispatchContext, delivery: dict[str, Any]) -> None:
    """The events of an outcome already stored, as its handler published them (or was about to)."""
    await announce(
        ctx,
        delivery,
        DeliveryState(delivery["state"]),
        reason=delivery.get("reason"),
        addressing=Addressing(to=delivery["to"]) if delivery.get("to") else None,
        message_id=delivery.get("message_id"),
    )


async def announce(
    ctx: DispatchContext,
    delivery: dict[str, Any],
    state: DeliveryState,
    *,
    reason: str | None,
    addressing: Addressing | None,
    message_id: str | None,
) -> None:
    """delivery.recorded for every outcome, document.sent for a sent document (the owning system marks it)."""
    recipients = addressing.to if addressing else []
    common = {
        "tenant_id": delivery["tenant_id"],
        "correlation_id": delivery["correlation_id"],
        "dispatch_id": delivery["dispatch_id"],
        "document_id": delivery["document_id"],
    }
    events: list[Event] = [
        DeliveryRecorded(
            event_id=deterministic_id("delivery.recorded", delivery["_id"]),
            outcome=state.value,
            recipients=recipients,
            reason=reason,
            smtp_message_id=message_id,
            **common,
        )
    ]
    if state is DeliveryState.SENT:
        events.append(
            DocumentSent(
                event_id=deterministic_id("document.sent", delivery["_id"]),
                mailing_id=delivery["mailing_id"],
                document_number=delivery["document_number"],
                recipients=recipients,
                **common,
            )
        )
    await asyncio.gather(*(ctx.bus.publish(e) for e in events))


class CompletionCheck:
    """Whether a dispatch is complete is asked once per short while after outcomes arrive, not once per
    outcome, and not at all while this replica still sends documents of it: a check costs queries, and
    a dispatch with a send in flight here is not complete. The last of those sends to end asks."""

    DELAY_S = 0.1

    def __init__(self, check: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.check = check  # complete_if_done, set by the bootstrap once the context exists
        self._scheduled: dict[str, asyncio.Task[None]] = {}
        self._in_flight: Counter[str] = Counter()
        self._deferred: set[str] = set()

    @contextmanager
    def sending(self, key: str) -> Iterator[None]:
        """Around one send of the dispatch `key` by this replica, from its claim to its outcome."""
        self._in_flight[key] += 1
        try:
            yield
        finally:
            self._in_flight[key] -= 1
            if self._in_flight[key] == 0:
                del self._in_flight[key]
                if key in self._deferred:
                    self._deferred.discard(key)
                    self.soon(key)

    def busy(self, key: str) -> bool:
        """Whether this replica is sending documents of the dispatch `key` (it is not complete, then)."""
        return self._in_flight[key] > 0

    def soon(self, key: str) -> None:
        if key not in self._scheduled:
            self._scheduled[key] = asyncio.get_running_loop().create_task(self._check(key))

    async def _check(self, key: str) -> None:
        await asyncio.sleep(self.DELAY_S)
        del self._scheduled[key]  # outcomes stored from now on schedule a check of their own
        if self.busy(key):
            self._deferred.add(key)  # asked when the last of them ends
            return
        assert self.check is not None
        try:
            await self.check(key)
        except Exception:  # the sweep checks every sending dispatch again
            log.exception("completion check failed", dispatch_key=key)

    async def wait(self) -> None:
        """Let scheduled checks finish (at shutdown, after the last sends)."""
        await asyncio.gather(*self._scheduled.values(), return_exceptions=True)


async def complete_if_done(ctx: DispatchContext, key: str) -> None:
    """When every document has its final outcome, announce the dispatch's completion (once per dispatch id)."""
    if await ctx.deliveries.any_pending(key):  # first: while sends go on, the check costs this query alone
        return
    dispatch = await ctx.dispatches.get(key)
    # A paused dispatch whose every document has its outcome (the last sends in flight at the pause
    # ended) has nothing left to resume: it completes, and its mailing is regrouped.
    if dispatch is None or dispatch["status"] not in COMPLETABLE:
        return
    sent = await ctx.deliveries.count(key, (DeliveryState.SENT,))
    failed = await ctx.deliveries.count(key, NOT_SENT)
    uncertain = await ctx.deliveries.count(key, (DeliveryState.UNCERTAIN,))
    failures = [
        Failure(document_id=d["document_id"], reason=d["reason"] or "failed")
        async for d in ctx.deliveries.in_state(key, NOT_SENT, limit=DispatchCompleted.FAILURES_LISTED)
    ]
    # Published before the status moves: a crash in between leaves the dispatch "sending", and the sweep
    # publishes the same event (same id) again rather than never.
    await ctx.bus.publish(
        DispatchCompleted(
            event_id=deterministic_id("dispatch.completed", key),
            tenant_id=dispatch["tenant_id"],
            correlation_id=dispatch["correlation_id"],
            dispatch_id=dispatch["dispatch_id"],
            mailing_id=dispatch["mailing_id"],
            sent=sent,
            failed=failed,
            failures=failures,
            failures_truncated=failed > len(failures),
            uncertain=uncertain,
        )
    )
    completed = {
        "status": DispatchStatus.COMPLETED,
        "sent": sent,
        "failed": failed,
        "uncertain": uncertain,
        "completed_at": datetime.now(UTC),
    }
    if dispatch["status"] != DispatchStatus.COMPLETED:
        await ctx.dispatches.move_status(key, dispatch["status"], completed)
