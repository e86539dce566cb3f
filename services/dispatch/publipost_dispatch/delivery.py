"""Handing one document's e-mails to the server and storing the outcome at once: shared by the
sends of a dispatch and the immediate send over HTTP."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from publipost_contracts.reads import DocumentView, MailingView

from .domain import (
    Addressing,
    BadTemplate,
    DeliveryState,
    DocumentFacts,
    SendWithdrawn,
    UnknownVariable,
    UnsafeHeader,
    Verdict,
    delivery_id_for,
    message_id_for,
    verdict_for_attempt,
    verdict_for_reply,
)
from .mail import Attachment, MessageBuilder
from .model import AcceptedEmail, Delivery, Dispatch
from .repository import DeliveryRepository
from .senders import Sender
from .smtp import SmtpRefused, SmtpUnavailable, SmtpUncertain


@dataclass(frozen=True)
class Content:
    subject: str
    body: str
    html_body: str | None
    attachment: Attachment | None  # None: a plain e-mail
    reply_to: str | None
    also_attached: tuple[Attachment, ...] = ()  # after the document: an invoice's UBL XML


@dataclass(frozen=True)
class Outcome:
    state: DeliveryState
    reason: str | None = None
    reply: str | None = None
    message_id: str | None = None
    retry: bool = False  # a temporary failure with tries left
    withdrawn: bool = False  # not sent, nor tried: no longer wanted when its turn came (its dispatch paused)
    errors: list[str] = field(default_factory=list)  # SMTP errors met; each counts toward the pause threshold
    stored: bool | None = None  # sent and stored here (True), or another handler had stored it (False)
    address_refused: bool = False  # the server refused the document's own address for good


async def deliver(
    deliveries: DeliveryRepository,
    holder: str,
    max_attempts: int,
    sender: Sender,
    delivery: Delivery,
    addressing: Addressing,
    content: Content,
    *,
    build_message: MessageBuilder,
    still_wanted: Callable[[], Awaitable[bool]] | None = None,
) -> Outcome:
    """Send each e-mail of the delivery not yet accepted (a retry skips those the server took), the
    document's own recipients first. The one write after the server accepts the last e-mail is the whole
    window in which a crash could make a later retry send the document twice (with the same Message-ID).
    A document sent has its outcome recorded on `delivery` and stored; any other outcome is the caller's.
    Each e-mail asks `still_wanted` right before it goes (after its waits for a permit and a connection)."""
    account = sender.account
    envelopes = addressing.envelopes()
    accepted = dict(delivery.accepted)
    errors: list[str] = []
    refused_copies: dict[str, str] = {}
    for i, envelope in enumerate(envelopes):
        if str(i) in accepted:
            continue
        message_id = message_id_for(delivery.id, i, account.message_id_domain)
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
            also_attached=content.also_attached,
        )
        try:
            result = await sender.send(message, envelope.recipients, envelope.required, still_wanted)
        except SendWithdrawn:
            return Outcome(DeliveryState.QUEUED, withdrawn=True, errors=errors)
        except SmtpUncertain as exc:
            errors.append(str(exc))
            if i == 0:
                return Outcome(DeliveryState.UNCERTAIN, reason=str(exc), errors=errors)
            refused_copies[", ".join(envelope.to)] = f"uncertain: {exc}"
            continue
        except (SmtpRefused, SmtpUnavailable) as exc:
            errors.append(str(exc))
            verdict = verdict_for_reply(exc.code) if isinstance(exc, SmtpRefused) else Verdict.RETRY
            if verdict_for_attempt(verdict, delivery.attempts, max_attempts) is Verdict.RETRY:
                return Outcome(DeliveryState.QUEUED, reason=str(exc), retry=True, errors=errors)
            if i == 0:
                refused = isinstance(exc, SmtpRefused) and exc.address_refused
                return Outcome(DeliveryState.FAILED, reason=str(exc), errors=errors, address_refused=refused)
            refused_copies[", ".join(envelope.to)] = str(exc)
            continue
        refused_copies |= result.refused
        accepted[str(i)] = AcceptedEmail(reply=result.reply, message_id=message_id)
        if i < len(envelopes) - 1:
            await deliveries.accept(delivery.id, holder, i, accepted[str(i)])
    primary = accepted["0"]
    reply = primary.reply + (f"; copies refused: {refused_copies}" if refused_copies else "")
    delivery.record(
        DeliveryState.SENT, subject=content.subject, addressing=addressing, smtp_reply=reply, message_id=primary.message_id
    )
    stored = await deliveries.finish(delivery)
    return Outcome(DeliveryState.SENT, reply=reply, message_id=primary.message_id, errors=errors, stored=stored)


def dispatch_delivery(dispatch: Dispatch, mailing: MailingView, document: DocumentView) -> Delivery:
    """The record of one document's send in a dispatch, before it is sent (or failed at once: no PDF)."""
    document = dispatch.as_sent(document)
    facts = DocumentFacts.of(document, mailing, dispatch.document_type)
    try:  # the history shows (and searches) the subject before the send; the send renders it again
        assert dispatch.text is not None  # set before the first delivery (Dispatch.prepare)
        subject: str | None = dispatch.text.render(facts.variables())[0]
    except (UnsafeHeader, UnknownVariable, BadTemplate):
        subject = None
    return Delivery.new(
        delivery_id=delivery_id_for(dispatch.id, document.id),
        kind="dispatch",
        dispatch_key=dispatch.id,
        dispatch_id=dispatch.dispatch_id,
        tenant_id=dispatch.tenant_id,
        correlation_id=dispatch.correlation_id,
        document_type=dispatch.document_type,
        mailing=mailing,
        document=document,
        subject=subject,
        failed=f"no PDF to attach ({document.error or document.status})" if document.pdf_blob_id is None else None,
    )
