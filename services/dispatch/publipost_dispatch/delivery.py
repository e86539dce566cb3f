"""Handing one document's e-mails to the server and storing the outcome at once: shared by the
sends of a dispatch and the immediate send over HTTP."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from publipost_contracts.reads import DocumentView, MailingView

from .domain import (
    Addressing,
    BadTemplate,
    DeliveryState,
    DocumentFacts,
    EmailText,
    UnknownVariable,
    UnsafeHeader,
    Verdict,
    delivery_id_for,
    history_terms,
    message_id_for,
    verdict_for_attempt,
    verdict_for_reply,
)
from .mail import Attachment, MessageBuilder
from .repository import DeliveryRepository
from .senders import Sender
from .smtp import SmtpRefused, SmtpUnavailable, SmtpUncertain


@dataclass(frozen=True)
class Content:
    subject: str
    body: str
    html_body: str | None
    attachment: Attachment
    reply_to: str | None


@dataclass(frozen=True)
class Outcome:
    state: DeliveryState
    reason: str | None = None
    reply: str | None = None
    message_id: str | None = None
    retry: bool = False  # a temporary failure with tries left
    errors: list[str] = field(default_factory=list)  # SMTP errors met; each counts toward the pause threshold
    stored: bool | None = None  # sent and stored here (True), or another handler had stored it (False)


async def deliver(
    deliveries: DeliveryRepository,
    holder: str,
    max_attempts: int,
    sender: Sender,
    delivery: dict[str, Any],
    addressing: Addressing,
    content: Content,
    *,
    build_message: MessageBuilder,
) -> Outcome:
    """Send each e-mail of the delivery not yet accepted (a retry skips those the server took), the
    document's own recipients first. The one write after the server accepts the last e-mail is the whole
    window in which a crash could make a later retry send the document twice (with the same Message-ID)."""
    account = sender.account
    envelopes = addressing.envelopes()
    accepted: dict[str, Any] = dict(delivery.get("accepted") or {})
    errors: list[str] = []
    refused_copies: dict[str, str] = {}
    for i, envelope in enumerate(envelopes):
        if str(i) in accepted:
            continue
        message_id = message_id_for(delivery["_id"], i, account.message_id_domain)
        message = build_message(
            sender=account.sender,
            to=envelope.to,
            cc=envelope.cc,
            reply_to=content.reply_to,
            subject=content.subject,
            body=content.body,
            html_body=content.html_body,
            attachment=content.attachment,
            message_id=message_id,
        )
        try:
            result = await sender.send(message, envelope.recipients, envelope.required)
        except SmtpUncertain as exc:
            errors.append(str(exc))
            if i == 0:
                return Outcome(DeliveryState.UNCERTAIN, reason=str(exc), errors=errors)
            refused_copies[", ".join(envelope.to)] = f"uncertain: {exc}"
            continue
        except (SmtpRefused, SmtpUnavailable) as exc:
            errors.append(str(exc))
            verdict = verdict_for_reply(exc.code) if isinstance(exc, SmtpRefused) else Verdict.RETRY
            if verdict_for_attempt(verdict, delivery["attempts"], max_attempts) is Verdict.RETRY:
                return Outcome(DeliveryState.QUEUED, reason=str(exc), retry=True, errors=errors)
            if i == 0:
                return Outcome(DeliveryState.FAILED, reason=str(exc), errors=errors)
            refused_copies[", ".join(envelope.to)] = str(exc)
            continue
        refused_copies |= result.refused
        accepted[str(i)] = {"reply": result.reply, "message_id": message_id}
        if i < len(envelopes) - 1:
            await deliveries.accept(delivery["_id"], holder, i, accepted[str(i)])
    primary = accepted["0"]
    reply = primary["reply"] + (f"; copies refused: {refused_copies}" if refused_copies else "")
    fields = outcome_fields(delivery, DeliveryState.SENT, None, content.subject, addressing, reply, primary["message_id"])
    stored = await deliveries.finish(delivery["_id"], DeliveryState.SENT, fields)
    return Outcome(DeliveryState.SENT, reply=reply, message_id=primary["message_id"], errors=errors, stored=stored)


def outcome_fields(
    delivery: dict[str, Any],
    state: DeliveryState,
    reason: str | None,
    subject: str | None,
    addressing: Addressing | None,
    smtp_reply: str | None,
    message_id: str | None,
) -> dict[str, Any]:
    """What the history shows of an outcome: recipients, subject, server reply, error."""
    subject = subject if subject is not None else delivery.get("subject")
    fields: dict[str, Any] = {
        "reason": reason,
        "smtp_reply": smtp_reply,
        "message_id": message_id,
        "subject": subject,
        "terms": history_terms(delivery, state, subject),
    }
    if addressing is not None:
        fields |= {
            "to": addressing.to,
            "cc": addressing.cc,
            "bcc": addressing.bcc + ([addressing.sender_copy] if addressing.sender_copy else []),
            "separate_sends": addressing.separate,
        }
    return fields


def dispatch_delivery(dispatch: dict[str, Any], mailing: MailingView, document: DocumentView) -> dict[str, Any]:
    """The record of one document's send in a dispatch, before it is sent (or failed at once: no PDF)."""
    facts = DocumentFacts(document.document_number, mailing.name, document.recipient_name, document.customer_number)
    try:  # the history shows (and searches) the subject before the send; the send renders it again
        subject: str | None = EmailText(**dispatch["text"]).render(facts.variables(date.today()))[0]
    except (UnsafeHeader, UnknownVariable, BadTemplate):
        subject = None
    return new_delivery(
        delivery_id=delivery_id_for(dispatch["_id"], document.id),
        kind="dispatch",
        dispatch_key=dispatch["_id"],
        dispatch_id=dispatch["dispatch_id"],
        tenant_id=dispatch["tenant_id"],
        correlation_id=dispatch["correlation_id"],
        document_type=dispatch["document_type"],
        mailing=mailing,
        document=document,
        subject=subject,
        failed=f"no PDF to attach ({document.error or document.status})" if document.pdf_blob_id is None else None,
    )


def new_delivery(
    *,
    delivery_id: str,
    kind: str,
    dispatch_key: str,
    dispatch_id: str,
    tenant_id: str,
    correlation_id: str,
    document_type: str | None,
    mailing: MailingView,
    document: DocumentView,
    subject: str | None,
    to: list[str] | None = None,
    failed: str | None = None,
) -> dict[str, Any]:
    """The one way a delivery record is made, a dispatch's or an immediate send's: queued, or failed at once
    with the reason `failed`; with the terms the history searches."""
    now = datetime.now(UTC)
    state = DeliveryState.FAILED if failed else DeliveryState.QUEUED
    delivery = {
        "_id": delivery_id,
        "kind": kind,
        "dispatch_key": dispatch_key,
        "dispatch_id": dispatch_id,
        "tenant_id": tenant_id,
        "correlation_id": correlation_id,
        "document_type": document_type,
        "mailing_id": mailing.id,
        "mailing_name": mailing.name,
        "document_id": document.id,
        "index": document.index,
        "document_number": document.document_number,
        "customer_number": document.customer_number,
        "record_email": document.email,
        "recipient_name": document.recipient_name,
        "pdf_blob_id": document.pdf_blob_id,
        "state": state,
        "reason": failed,
        "attempts": 0,
        "to": to or [],
        "subject": subject,
        "created_at": now,
        "finished_at": now if failed else None,
    }
    return delivery | {"terms": history_terms(delivery, state, subject)}
