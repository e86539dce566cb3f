"""dispatch.requested and dispatch.resumed: check what the dispatch would send, then ask for one send per
document (again, for a resumed one). The recording of deliveries, refusal and start are a plain e-mail's too
(emails.py)."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import NoReturn

from publipost_bus import Components, PermanentFailure
from publipost_contracts import (
    DispatchRefused,
    DispatchRequested,
    DispatchResumed,
    EmailsRequested,
    Event,
    SendRequested,
)
from publipost_contracts.reads import MailingView
from publipost_logging import get_logger
from publipost_refusals import Conflict, NotFound, Refusal

from .accounts import NoSealKey
from .completion import complete_if_done
from .context import DispatchContext
from .delivery import dispatch_delivery
from .documents import check_chosen, chosen_documents
from .domain import (
    PENDING,
    DeliveryState,
    DispatchStatus,
    EmailText,
    check_message,
    dispatch_key,
)
from .model import Delivery, Dispatch

log = get_logger(__name__)


async def dispatch_requested(event: DispatchRequested, ctx: DispatchContext = Components) -> None:
    """Record one delivery per document of the mailing and ask for each send on dispatch's own work queue,
    which every replica consumes: the sends, not the fan-out, are shared."""
    key = dispatch_key(event.tenant_id, event.dispatch_id)
    dispatch = await fanning_out(ctx, Dispatch.requested(key, event, datetime.now(UTC)))
    if dispatch is None:
        return
    try:
        mailing, text, pause_after = await what_it_sends(event, ctx)
    except Refusal as refusal:
        await refuse(ctx, event, dispatch, refusal)
    dispatch.prepare(mailing.name, text, pause_after)
    await ctx.dispatches.save(dispatch, "mailing_name", "text", "pause_after_errors")
    documents = chosen_documents(ctx.storage.blobs, event.tenant_id, mailing, dispatch.document_ids)
    deliveries = (dispatch_delivery(dispatch, mailing, document) async for document in documents)
    await start_sending(ctx, dispatch, await record_and_ask(event, ctx, dispatch, deliveries))


async def fanning_out(ctx: DispatchContext, new: Dispatch) -> Dispatch | None:
    """The dispatch as stored (`new`, or the one a redelivered request stored first) while its fan-out is
    to be done; None once it has moved on."""
    await ctx.dispatches.create(new)
    dispatch = await ctx.dispatches.get(new.id)
    assert dispatch is not None
    return dispatch if dispatch.status is DispatchStatus.FANNING_OUT else None


async def refuse(ctx: DispatchContext, event: Event, dispatch: Dispatch, refusal: Refusal) -> NoReturn:
    """fanning_out → refused, stored with the reason and said on the bus: whoever asked (a campaign's
    occurrence) shows why nothing went. The request is not tried again."""
    dispatch.refuse(str(refusal))
    await ctx.dispatches.move(dispatch, DispatchStatus.FANNING_OUT, "reason")
    await ctx.bus.publish(
        DispatchRefused.caused_by(
            event,
            key="refused",
            dispatch_id=dispatch.dispatch_id,
            mailing_id=dispatch.mailing_id,
            segment_id=dispatch.segment_id,
            reason=str(refusal),
        )
    )
    raise PermanentFailure(f"dispatch {dispatch.dispatch_id} refused: {refusal}") from None


async def start_sending(ctx: DispatchContext, dispatch: Dispatch, total: int) -> None:
    """fanning_out → sending once every delivery is recorded (complete at once when there was none)."""
    dispatch.start_sending(total)
    await ctx.dispatches.save(dispatch, "total")
    await ctx.dispatches.move(dispatch, DispatchStatus.FANNING_OUT)
    await complete_if_done(ctx, dispatch.id)


async def what_it_sends(event: DispatchRequested, ctx: DispatchContext) -> tuple[MailingView, EmailText, int]:
    """The mailing, its e-mail text and the pause threshold of the dispatch; a Refusal says why it cannot go."""
    check_message(event, ctx.settings.max_recipients_per_send)
    (await ctx.sending.get(event.tenant_id)).check_email_enabled()
    mailing = await ctx.merge.mailing(event.tenant_id, event.mailing_id)
    if mailing is None:
        raise NotFound(f"mailing_id: no mailing {event.mailing_id!r} for this tenant")
    if mailing.output != "pdf":
        raise Conflict("only PDF mailings can be e-mailed; this mailing has DOCX documents only")
    if not mailing.sendable:
        raise Conflict(f"mailing {event.mailing_id!r} is {mailing.status}, not ready to send")
    if event.document_ids is not None:
        await check_chosen(ctx.storage.blobs, event.tenant_id, mailing, event.document_ids)
    text, pause_after = await account_and_text(
        event, ctx, EmailText.given(event.subject, event.body, event.document_type)
    )
    return mailing, text, pause_after


async def account_and_text(
    event: DispatchRequested | EmailsRequested, ctx: DispatchContext, given: EmailText
) -> tuple[EmailText, int]:
    """The e-mail's text (the e-mail template's when the request names one, else `given`) and the pause
    threshold of the account it goes through, which must be shared with whoever asked."""
    try:
        account = await ctx.accounts.for_requester(event.tenant_id, event.account_id, event.requested_by)
    except NoSealKey as exc:
        raise Conflict(str(exc)) from None
    if event.email_template_id is None:
        return given, account.pause_after_errors
    template = await ctx.email_templates.get(event.tenant_id, event.email_template_id)
    if template is None:
        raise NotFound(f"email_template_id: no e-mail template {event.email_template_id!r} for this tenant")
    return template, account.pause_after_errors


async def record_and_ask(
    event: Event, ctx: DispatchContext, dispatch: Dispatch, deliveries: AsyncIterator[Delivery]
) -> int:
    """Deliveries are written a page at a time and each send asked for right after: a fan-out that runs
    again after a crash inserts what is missing and asks again under the same event ids."""
    total = 0
    page: list[Delivery] = []

    async def flush() -> None:
        if not page:
            return
        # Each PDF's length, read here a page at a time, lets its send read the PDF in one round trip.
        pdf_ids = [d.pdf_blob_id for d in page if d.pdf_blob_id]
        files = await ctx.storage.blobs.infos(pdf_ids, tenant_id=event.tenant_id) if pdf_ids else {}
        for d in page:
            if d.pdf_blob_id in files:
                d.pdf_length = files[d.pdf_blob_id]["length"]
        await ctx.deliveries.add_many(page)
        dispatch.progress_at = datetime.now(UTC)
        await ctx.dispatches.save(dispatch, "progress_at")
        # A page's sends are published together: one after the other, each waiting for the broker's
        # confirmation, the fan-out (not the sending) would set the pace.
        await asyncio.gather(
            *(
                ctx.bus.publish(
                    SendRequested.caused_by(
                        event, key=d.document_id, dispatch_id=d.dispatch_id, document_id=d.document_id
                    )
                )
                for d in page
                if d.state is DeliveryState.QUEUED
            )
        )
        page.clear()

    async for delivery in deliveries:
        total += 1
        page.append(delivery)
        if len(page) == 500:
            await flush()
    await flush()
    return total


async def dispatch_resumed(event: DispatchResumed, ctx: DispatchContext = Components) -> None:
    """Send again every delivery still queued: keyed by the resumption, so the inbox does not skip them."""
    key = dispatch_key(event.tenant_id, event.dispatch_id)
    async for delivery in ctx.deliveries.in_state(key, PENDING):
        await ctx.bus.publish(
            SendRequested.caused_by(
                event, key=delivery.document_id, dispatch_id=event.dispatch_id, document_id=delivery.document_id
            )
        )
    await complete_if_done(ctx, key)
