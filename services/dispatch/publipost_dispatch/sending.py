"""send.requested: one document, claimed, addressed, e-mailed, its outcome stored and announced."""


import asyncio

from publipost_bus import Components, PermanentFailure
from publipost_contracts import (
    DeliveryRecorded,
    DocumentSent,
    Event,
    SendRequested,
    deterministic_id,
)
from publipost_einvoice.blobs import facturx_blob_id, ubl_blob_id
from publipost_logging import get_logger
from publipost_storage import BlobNotFound

from .completion import pause
from .context import DispatchContext
from .delivery import Content, deliver
from .domain import (
    Addressing,
    BadTemplate,
    DeliveryState,
    InvalidAddress,
    UnknownVariable,
    UnsafeHeader,
    attachment_name,
    delivery_id_for,
    dispatch_key,
    einvoice_format,
)
from .limits import DailyCapReached
from .mail import DOCX_TYPE, MESSAGE_BUILDERS, XML_TYPE, Attachment, file_attachment, pdf_attachment
from .model import Delivery, Dispatch

log = get_logger(__name__)


class SendDeferred(Exception):
    """A temporary failure: the bus retries the send after its backoff."""



async def send_requested(event: SendRequested, ctx: DispatchContext = Components) -> None:
    """Claim the document, resolve its address, build the e-mail, send it, record the outcome."""
    key = dispatch_key(event.tenant_id, event.dispatch_id)
    delivery_id = delivery_id_for(key, event.document_id)
    dispatch = await ctx.dispatches.recent(key)
    if dispatch is None:
        raise PermanentFailure(f"no dispatch {event.dispatch_id}")
    if not dispatch.takes_sends:
        return  # the delivery stays queued; resuming asks for it again
    holder = ctx.senders.holder
    delivery = await ctx.deliveries.claim_and_get(delivery_id, holder, ctx.settings.send_lease_s)
    if delivery is None:
        delivery = await ctx.deliveries.get(delivery_id)
        if delivery is None:
            raise PermanentFailure(f"no delivery of document {event.document_id} in dispatch {event.dispatch_id}")
        log.info("document already final or being sent", document_id=event.document_id, state=delivery.state)
        if delivery.final:
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



async def _send(event: SendRequested, ctx: DispatchContext, dispatch: Dispatch, delivery: Delivery) -> None:
    account = await ctx.accounts.get(dispatch.tenant_id, dispatch.account_id)
    assert dispatch.text is not None  # set before the first delivery (Dispatch.prepare)
    try:
        subject, body, html_body = dispatch.text.render(delivery.facts().variables(), delivery.whose)
    except (UnsafeHeader, UnknownVariable, BadTemplate) as exc:
        await record(ctx, delivery, DeliveryState.FAILED, reason=str(exc))
        return

    cc = list(dispatch.cc)
    rule, wanted_format = None, None
    if dispatch.to:
        to = list(dispatch.to)
    else:
        resolved = await ctx.resolver.resolve(
            event.tenant_id,
            event.correlation_id,
            customer_number=delivery.customer_number,
            record_email=delivery.record_email,
            correspondence_type=dispatch.correspondence_type,
            prefer_directory=delivery.prefer_directory,
            document_type=dispatch.document_type,
        )
        if resolved.email is None:
            reason = f"no address: {resolved.reason}"
            await record(ctx, delivery, DeliveryState.FAILED, reason=reason, subject=subject, address_failed=True)
            return
        to, rule, wanted_format = [resolved.email], resolved.rule, resolved.format
        cc += resolved.cc
    addressing = Addressing(
        to=to,
        cc=cc,
        bcc=list(dispatch.bcc),
        sender_copy=account.from_address if dispatch.copy_to_sender else None,
        separate=dispatch.separate_sends,
        rule=rule,
    )
    # A recipient who wants this document type as DOCX gets the DOCX (every PDF mailing's document has one).
    as_docx = wanted_format == "docx" and delivery.docx_blob_id is not None
    einvoice = einvoice_format(delivery.einvoice_format, wanted_format)
    if not delivery.is_letter:
        delivery.attached = "docx" if as_docx else "pdf"
    try:
        addressing = addressing.checked()
        attachment = await _attachment(ctx, delivery, as_docx, einvoice)
        also_attached = await _einvoice_xml(ctx, delivery, einvoice)
    except InvalidAddress as exc:
        await record(
            ctx, delivery, DeliveryState.FAILED, reason=str(exc), subject=subject, addressing=addressing, address_failed=True
        )
        return
    except UnsafeHeader as exc:
        await record(ctx, delivery, DeliveryState.FAILED, reason=str(exc), subject=subject, addressing=addressing)
        return
    except BlobNotFound as exc:
        missing = "DOCX" if as_docx else {"facturx": "Factur-X PDF", "ubl": "PDF or UBL XML"}.get(einvoice or "", "PDF")
        await record(ctx, delivery, DeliveryState.FAILED, reason=f"{missing} missing: {exc}", subject=subject)
        return

    reply_to = dispatch.reply_to or account.reply_to
    content = Content(subject, body, html_body, attachment, reply_to=reply_to, also_attached=also_attached)
    outcome = await deliver(
        ctx.deliveries,
        ctx.senders.holder,
        ctx.settings.max_send_attempts,
        ctx.senders.for_account(account),
        delivery,
        addressing,
        content,
        build_message=MESSAGE_BUILDERS[ctx.settings.mime_writer],
        # Read fresh (`recent` may be a second old): a send claimed before a pause, waiting for its permit
        # or its connection, must not go once the pause is stored.
        still_wanted=lambda: ctx.dispatches.takes_sends(dispatch.id),
    )
    if outcome.withdrawn:  # back to the queue, untried: resuming asks for it again
        await ctx.deliveries.give_back(delivery.id, ctx.senders.holder)
        log.info("send given back: its dispatch is paused", document_id=delivery.document_id)
    elif outcome.retry:
        await ctx.deliveries.release(delivery.id, ctx.senders.holder, outcome.reason or "")
    else:
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
            address_failed=outcome.address_refused,
        )
    # Counted once the outcome is stored, so that a pause counts what is left without this document.
    for error in outcome.errors:
        errors = await ctx.dispatches.count_error(dispatch.id)
        if dispatch.too_many_errors(errors):
            await pause(ctx, dispatch.id, f"paused after {errors} SMTP errors; last: {error}")
    if outcome.retry:
        raise SendDeferred(outcome.reason)



async def _attachment(
    ctx: DispatchContext, delivery: Delivery, as_docx: bool, einvoice: str | None
) -> Attachment | None:
    if delivery.is_letter:
        return None
    if as_docx and delivery.docx_blob_id is not None:
        docx = await ctx.pdfs.get(delivery.tenant_id, delivery.docx_blob_id)  # the reader reads any of its files
        return file_attachment(docx, attachment_name(delivery.document_number, "docx"), DOCX_TYPE)
    if einvoice == "facturx" and delivery.docx_blob_id is not None:  # the Factur-X PDF goes instead of the plain one
        facturx = await ctx.pdfs.get(delivery.tenant_id, facturx_blob_id(delivery.docx_blob_id))
        return pdf_attachment(facturx, attachment_name(delivery.document_number))
    pdf = await ctx.pdfs.get(delivery.tenant_id, delivery.pdf_blob_id, delivery.pdf_length)
    return pdf_attachment(pdf, attachment_name(delivery.document_number))



async def _einvoice_xml(ctx: DispatchContext, delivery: Delivery, einvoice: str | None) -> tuple[Attachment, ...]:
    """The UBL 2.1 XML beside the PDF, named after the document number as the PDF is."""
    if einvoice != "ubl" or delivery.docx_blob_id is None or delivery.is_letter:
        return ()
    xml = await ctx.pdfs.get(delivery.tenant_id, ubl_blob_id(delivery.docx_blob_id))
    return (file_attachment(xml, attachment_name(delivery.document_number, "xml"), XML_TYPE),)


async def _retry_or_fail(ctx: DispatchContext, delivery: Delivery, reason: str) -> None:
    if delivery.attempts >= ctx.settings.max_send_attempts:
        await record(ctx, delivery, DeliveryState.FAILED, reason=reason)
        return
    await ctx.deliveries.release(delivery.id, ctx.senders.holder, reason)
    raise SendDeferred(reason)



async def record(
    ctx: DispatchContext,
    delivery: Delivery,
    state: DeliveryState,
    *,
    reason: str | None = None,
    subject: str | None = None,
    addressing: Addressing | None = None,
    smtp_reply: str | None = None,
    message_id: str | None = None,
    stored: bool | None = None,
    address_failed: bool = False,
) -> None:
    """Store the outcome (unless `deliver` did, right after the server's answer), announce it, and
    complete the dispatch when it was the last one. Only the handler whose write moved the delivery to
    its final state goes on (a redelivered copy of its message announces it again: see send_requested)."""
    if stored is None:
        delivery.record(
            state,
            reason=reason,
            subject=subject,
            addressing=addressing,
            smtp_reply=smtp_reply,
            message_id=message_id,
            address_failed=address_failed,
        )
        stored = await ctx.deliveries.finish(delivery)
    if not stored:
        return
    await announce(ctx, delivery, state, reason=reason, addressing=addressing, message_id=message_id)
    if delivery.kind == "dispatch":
        ctx.completions.soon(delivery.dispatch_key)



async def announce_stored(ctx: DispatchContext, delivery: Delivery) -> None:
    """The events of an outcome already stored, as its handler published them (or was about to)."""
    await announce(
        ctx,
        delivery,
        delivery.state,
        reason=delivery.reason,
        addressing=Addressing(to=delivery.to) if delivery.to else None,
        message_id=delivery.message_id,
    )



async def announce(
    ctx: DispatchContext,
    delivery: Delivery,
    state: DeliveryState,
    *,
    reason: str | None,
    addressing: Addressing | None,
    message_id: str | None,
) -> None:
    """delivery.recorded for every outcome, document.sent for a sent document (the owning system marks it;
    a plain e-mail sends none)."""
    recipients = addressing.to if addressing else []
    common = {
        "tenant_id": delivery.tenant_id,
        "correlation_id": delivery.correlation_id,
        "dispatch_id": delivery.dispatch_id,
        "document_id": delivery.document_id,
    }
    events: list[Event] = [
        DeliveryRecorded(
            event_id=deterministic_id("delivery.recorded", delivery.id),
            outcome=state.value,
            recipients=recipients,
            reason=reason,
            smtp_message_id=message_id,
            **common,
        )
    ]
    if state is DeliveryState.SENT and not delivery.is_letter:
        events.append(
            DocumentSent(
                event_id=deterministic_id("document.sent", delivery.id),
                mailing_id=delivery.mailing_id,
                document_number=delivery.document_number,
                recipients=recipients,
                **common,
            )
        )
    await asyncio.gather(*(ctx.bus.publish(e) for e in events))
