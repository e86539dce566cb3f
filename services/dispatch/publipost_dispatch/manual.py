"""An immediate send of one document to addresses a person types: checked and recorded while the HTTP
call waits, sent in the background (a server that hangs would hold the call for minutes), recorded in
the same history as a dispatch's sends, announced the same way."""

import asyncio
import uuid
from dataclasses import dataclass

from publipost_logging import get_logger
from publipost_refusals import Conflict, NotFound
from publipost_storage import BlobNotFound

from . import sending
from .context import DispatchContext
from .delivery import Content, deliver
from .documents import document_of
from .domain import (
    MANUAL_SENDS,
    Account,
    Addressing,
    DeliveryState,
    DocumentFacts,
    EmailText,
    attachment_name,
)
from .mail import MESSAGE_BUILDERS, pdf_attachment
from .model import Delivery
from .senders import Sender

log = get_logger(__name__)


class UnknownDocument(NotFound):
    pass


class NoPdf(Conflict):
    pass


@dataclass(frozen=True)
class ManualSend:
    mailing_id: str
    document_id: str
    addressing: Addressing
    text: EmailText
    account_id: str | None
    reply_to: str | None
    document_type: str | None


async def send_soon(ctx: DispatchContext, tenant_id: str, correlation_id: str, request: ManualSend) -> Delivery:
    """Check the request, record the send (queued) and start it in the background; returns the record.
    Refusals (unknown document, no PDF, a variable or header that cannot be) come before any record."""
    account = await ctx.accounts.get(tenant_id, request.account_id)
    mailing = await ctx.merge.mailing(tenant_id, request.mailing_id)
    document = await document_of(ctx.storage.blobs, tenant_id, mailing, request.document_id) if mailing else None
    if mailing is None or document is None:
        raise UnknownDocument(f"document_id: no document {request.document_id!r} in mailing {request.mailing_id!r}")
    if document.pdf_blob_id is None:
        raise NoPdf("only PDF documents can be e-mailed; this document has no PDF")
    facts = DocumentFacts.of(document, mailing, request.document_type)
    subject, body, html_body = request.text.render(facts.variables())
    filename = attachment_name(document.document_number)  # refused (422) before anything is recorded
    try:
        pdf = await ctx.storage.blobs.get(document.pdf_blob_id, tenant_id=tenant_id)
    except BlobNotFound:
        raise NoPdf(f"the PDF of document {request.document_id!r} is not stored (any more)") from None
    send_id = f"manual-{uuid.uuid4()}"
    delivery = Delivery.new(
        delivery_id=send_id,
        kind="manual",
        dispatch_key=MANUAL_SENDS,
        dispatch_id=send_id,
        tenant_id=tenant_id,
        correlation_id=correlation_id,
        document_type=request.document_type,
        mailing=mailing,
        document=document,
        subject=subject,
        to=request.addressing.to,
    )
    await ctx.deliveries.add(delivery)
    content = Content(
        subject,
        body,
        html_body,
        pdf_attachment(pdf, filename),
        reply_to=request.reply_to or account.reply_to,
    )
    task = asyncio.get_running_loop().create_task(_send(ctx, delivery, request.addressing, content, account))
    ctx.manual_sends.add(task)
    task.add_done_callback(ctx.manual_sends.discard)
    return delivery


async def _send(
    ctx: DispatchContext, delivery: Delivery, addressing: Addressing, content: Content, account: Account
) -> None:
    """4xx answers are tried again here, with backoff. Cut by a crash, the send is found by the sweep and
    recorded uncertain."""
    send_id = delivery.id
    sender = ctx.senders.for_account(account)
    ctx.held.add(send_id)
    try:
        await _attempts(ctx, delivery, addressing, content, sender)
    except Exception as exc:  # before the server took it (an outcome once it has is always written)
        log.exception("immediate send failed before the server took it", send_id=send_id)
        reason = f"not sent: {exc!r}; it can be sent again"
        await sending.record(ctx, delivery, DeliveryState.FAILED, reason=reason, subject=content.subject)
    finally:
        ctx.held.discard(send_id)


async def _attempts(
    ctx: DispatchContext, delivery: Delivery, addressing: Addressing, content: Content, sender: Sender
) -> None:
    send_id = delivery.id
    for attempt in range(ctx.settings.max_send_attempts):
        await ctx.deliveries.claim(send_id, ctx.senders.holder, ctx.settings.send_lease_s)
        delivery = await ctx.deliveries.get(send_id) or delivery
        outcome = await deliver(
            ctx.deliveries,
            ctx.senders.holder,
            ctx.settings.max_send_attempts,
            sender,
            delivery,
            addressing,
            content,
            build_message=MESSAGE_BUILDERS[ctx.settings.mime_writer],
        )
        if not outcome.retry:
            break
        await ctx.deliveries.release(send_id, ctx.senders.holder, outcome.reason or "")
        await asyncio.sleep(ctx.bus.retry_policy.delay_s(attempt + 1))  # the bus's backoff, as a send.requested's
    await sending.record(
        ctx,
        delivery,
        outcome.state,
        reason=outcome.reason,
        subject=content.subject,
        addressing=addressing,
        smtp_reply=outcome.reply,
        message_id=outcome.message_id,
        stored=outcome.stored,
    )
