"""An immediate send of one document to addresses a person types: sent while the HTTP call waits,
recorded in the same history as a dispatch's sends, announced the same way."""

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from . import handlers
from .context import DispatchContext
from .delivery import Content, deliver
from .domain import (
    MANUAL_SENDS,
    Addressing,
    DeliveryState,
    DocumentFacts,
    EmailText,
    attachment_name,
    history_terms,
)
from .mail import pdf_attachment


class UnknownDocument(LookupError):
    pass


class NoPdf(ValueError):
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


async def send_now(ctx: DispatchContext, tenant_id: str, correlation_id: str, request: ManualSend) -> dict[str, Any]:
    """Returns the stored delivery, sent or failed. 4xx answers are tried again here, with backoff."""
    account = await ctx.accounts.get(tenant_id, request.account_id)
    mailing = await ctx.merge.mailing(tenant_id, request.mailing_id)
    document = await ctx.merge.document(tenant_id, request.mailing_id, request.document_id) if mailing else None
    if mailing is None or document is None:
        raise UnknownDocument(f"document_id: no document {request.document_id!r} in mailing {request.mailing_id!r}")
    if document["pdf_blob_id"] is None:
        raise NoPdf("only PDF documents can be e-mailed; this document has no PDF")
    facts = DocumentFacts(document["document_number"], mailing["name"], document["recipient_name"],
                          document["customer_number"])
    subject, body, html_body = request.text.render(facts.variables(date.today()))
    send_id = f"manual-{uuid.uuid4()}"
    delivery = {
        "_id": send_id,
        "kind": "manual",
        "dispatch_key": MANUAL_SENDS,
        "dispatch_id": send_id,
        "tenant_id": tenant_id,
        "correlation_id": correlation_id,
        "document_type": request.document_type,
        "mailing_id": request.mailing_id,
        "mailing_name": mailing["name"],
        "document_id": request.document_id,
        "index": document["index"],
        "document_number": document["document_number"],
        "customer_number": document["customer_number"],
        "recipient_name": document["recipient_name"],
        "pdf_blob_id": document["pdf_blob_id"],
        "state": DeliveryState.QUEUED,
        "attempts": 0,
        "subject": subject,
        "to": request.addressing.to,
        "created_at": datetime.now(UTC),
    }
    delivery["terms"] = history_terms(delivery, DeliveryState.QUEUED, subject)
    await ctx.deliveries.add(delivery)
    content = Content(
        subject,
        body,
        html_body,
        pdf_attachment(await ctx.storage.blobs.get(document["pdf_blob_id"]), attachment_name(document["document_number"])),
        reply_to=request.reply_to or account.reply_to,
    )
    sender = ctx.senders.for_account(account)
    for attempt in range(ctx.settings.max_send_attempts):
        await ctx.deliveries.claim(send_id, ctx.senders.holder, ctx.settings.send_lease_s)
        delivery = await ctx.deliveries.get(send_id) or delivery
        outcome = await deliver(
            ctx.deliveries, ctx.senders.holder, ctx.settings.max_send_attempts, sender, delivery, request.addressing,
            content,
        )
        if not outcome.retry:
            break
        await ctx.deliveries.release(send_id, ctx.senders.holder, outcome.reason or "")
        await asyncio.sleep(ctx.settings.retry_base_delay_s * 2**attempt)
    await handlers.record(
        ctx,
        delivery,
        outcome.state,
        reason=outcome.reason,
        subject=subject,
        addressing=request.addressing,
        smtp_reply=outcome.reply,
        message_id=outcome.message_id,
        stored=outcome.stored,
    )
    stored = await ctx.deliveries.get(send_id)
    assert stored is not None
    return stored
