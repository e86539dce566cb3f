"""The dispatch, its deliveries and the tenants' sending accounts as stored, with the moves each may make: a dispatch fans out, sends, is
paused and resumed, completes; a delivery is queued, claimed, given back for a retry, and gets its one
final outcome. A move that is not allowed is a named refusal.

Several moves are made in the database by one conditional update (a claim with its lease, an error
counted, a status compared and set), so that replicas racing for the same record cannot both win: the
method here says what the move changes, and the repository writes it under the condition the method
checks (see repository.py). Fields a later version added have defaults, so older records still load."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from publipost_addresses import is_valid_address
from publipost_contracts import DispatchRequested, EmailsRequested, Failure, Requester
from publipost_contracts.reads import DocumentView, MailingView, RecipientRecord
from publipost_refusals import Conflict, Invalid
from pydantic import PlainSerializer

from .domain import (
    COMPLETABLE,
    DOCUMENT_RECORD,
    FINAL,
    HOLDING,
    NO_ATTACHMENT,
    PASSWORD_BOUND_FIELDS,
    PENDING,
    RECIPIENT_RECORD,
    SENDING_ROLES,
    AccountInvalid,
    Addressing,
    DeliveryState,
    DispatchStatus,
    DocumentFacts,
    EmailText,
    LetterFacts,
    Sharing,
    TlsMode,
    dated,
    delivery_id_for,
    history_terms,
    should_pause,
)


class NotFanningOut(Conflict):
    def __init__(self, dispatch: "Dispatch") -> None:
        super().__init__(f"dispatch {dispatch.dispatch_id!r} is {dispatch.status}, not fanning out")


class NotSending(Conflict):
    def __init__(self, dispatch: "Dispatch") -> None:
        super().__init__(f"dispatch {dispatch.dispatch_id!r} is {dispatch.status}, not sending")


class NotPaused(Conflict):
    def __init__(self, dispatch: "Dispatch") -> None:
        super().__init__(f"dispatch {dispatch.dispatch_id!r} is {dispatch.status}, not paused")


class NotCompletable(Conflict):
    def __init__(self, dispatch: "Dispatch") -> None:
        super().__init__(f"dispatch {dispatch.dispatch_id!r} is {dispatch.status}: it cannot complete")


# The database keeps datetimes, not dates: a date is stored as its ISO text.
StoredDate = Annotated[date | None, PlainSerializer(lambda day: day.isoformat() if day else None)]


@dataclass(kw_only=True)
class Dispatch:
    """One dispatch of a mailing, or a plain e-mail to a segment's recipients; `id` is its key
    (domain.dispatch_key)."""

    id: str
    tenant_id: str
    dispatch_id: str
    mailing_id: str | None  # None: a plain e-mail
    correlation_id: str
    status: DispatchStatus
    created_at: datetime
    account_id: str | None = None
    segment_id: str | None = None  # a plain e-mail's recipients: the directory's segment
    document_type: str | None = None
    correspondence_type: str | None = None  # picks the recipient's contact for it in the directory
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    reply_to: str | None = None
    separate_sends: bool = False
    copy_to_sender: bool = False
    regroup: bool = True  # whether merge regroups the mailing at completion (a campaign's does not)
    document_date: StoredDate = None  # what the e-mail's {date} names; the day of sending when None
    document_ids: list[str] | None = None  # only these documents of the mailing; every one when None
    total: int = 0
    errors: int = 0  # SMTP errors since the last resumption
    resumptions: int = 0
    # What the sweep needs to run a fan-out again whose message was lost (see sweeper.py).
    request: dict[str, Any] | None = None
    progress_at: datetime | None = None
    # Known once the fan-out has checked what it sends.
    mailing_name: str | None = None
    text: EmailText | None = None
    pause_after_errors: int | None = None
    reason: str | None = None  # why it was refused or paused
    sent: int | None = None
    failed: int | None = None
    uncertain: int | None = None
    completed_at: datetime | None = None
    failures_file_id: str | None = None  # past FAILURES_LISTED: every failure, for dispatch.completed

    # Not stored until they have a value: a dispatch as first written carries only what it was asked.
    SET_LATER = (
        "mailing_name", "text", "pause_after_errors", "reason", "sent", "failed", "uncertain", "completed_at"
    )  # fmt: skip

    @classmethod
    def requested(cls, key: str, event: DispatchRequested, now: datetime) -> "Dispatch":
        return cls(
            id=key,
            tenant_id=event.tenant_id,
            dispatch_id=event.dispatch_id,
            mailing_id=event.mailing_id,
            correlation_id=event.correlation_id,
            account_id=event.account_id,
            document_type=event.document_type,
            correspondence_type=event.correspondence_type,
            to=list(event.to),
            cc=list(event.cc),
            bcc=list(event.bcc),
            reply_to=event.reply_to,
            separate_sends=event.separate_sends,
            copy_to_sender=event.copy_to_sender,
            # A send of some documents leaves the mailing whole: the rest may go later.
            regroup=event.regroup and event.document_ids is None,
            document_date=event.document_date,
            document_ids=event.document_ids,
            status=DispatchStatus.FANNING_OUT,
            created_at=now,
            request=event.model_dump(mode="json"),
            progress_at=now,
        )

    @property
    def requester(self) -> Requester | None:
        """Who started it, as the request named them: told when it ends or pauses."""
        named = (self.request or {}).get("requested_by")
        return Requester.model_validate(named) if named else None

    @classmethod
    def emailed(cls, key: str, event: EmailsRequested, now: datetime) -> "Dispatch":
        """A plain e-mail: no mailing to regroup, no document type, each recipient's own address."""
        return cls(
            id=key,
            tenant_id=event.tenant_id,
            dispatch_id=event.email_id,
            mailing_id=None,
            segment_id=event.segment_id,
            correlation_id=event.correlation_id,
            account_id=event.account_id,
            correspondence_type=event.correspondence_type,
            cc=list(event.cc),
            bcc=list(event.bcc),
            reply_to=event.reply_to,
            separate_sends=event.separate_sends,
            copy_to_sender=event.copy_to_sender,
            regroup=False,
            status=DispatchStatus.FANNING_OUT,
            created_at=now,
            request=event.model_dump(mode="json"),
            progress_at=now,
        )

    def as_sent(self, document: DocumentView) -> DocumentView:
        """The document as this dispatch e-mails it: a campaign that advances the document's date at each
        occurrence names the occurrence's day in the e-mail's {date}, not the day the document was made."""
        if self.document_date is None:
            return document
        return document.model_copy(update={"fields": {**document.fields, "date": dated(self.document_date)}})

    def prepare(self, mailing_name: str | None, text: EmailText, pause_after_errors: int) -> None:
        """What every send of the dispatch reads: checked once, before the first delivery is recorded."""
        self.mailing_name, self.text, self.pause_after_errors = mailing_name, text, pause_after_errors

    def refuse(self, reason: str) -> None:
        """fanning_out → refused: what it would send cannot go (an unknown mailing, a DOCX one...)."""
        if self.status is not DispatchStatus.FANNING_OUT:
            raise NotFanningOut(self)
        self.status, self.reason = DispatchStatus.REFUSED, reason

    def start_sending(self, total: int) -> None:
        """fanning_out → sending, every document recorded."""
        if self.status is not DispatchStatus.FANNING_OUT:
            raise NotFanningOut(self)
        self.total, self.status = total, DispatchStatus.SENDING

    @property
    def takes_sends(self) -> bool:
        """Whether a send of it goes now; those of a paused or refused one stay queued."""
        return self.status not in HOLDING

    def too_many_errors(self, errors: int) -> bool:
        return self.pause_after_errors is not None and should_pause(errors, self.pause_after_errors)

    def pause(self, reason: str) -> None:
        """sending → paused: no send starts; those queued wait for a person to resume."""
        if self.status is not DispatchStatus.SENDING:
            raise NotSending(self)
        self.status, self.reason = DispatchStatus.PAUSED, reason

    def resume(self) -> None:
        """paused → sending, its error count back to zero."""
        if self.status is not DispatchStatus.PAUSED:
            raise NotPaused(self)
        self.status, self.errors, self.reason = DispatchStatus.SENDING, 0, None
        self.resumptions += 1

    @property
    def completable(self) -> bool:
        """Whether it completes once every document has its outcome: a paused one too (nothing is left to
        resume), and a completed one again (it announces the completion again, same event id)."""
        return self.status in COMPLETABLE

    def complete(self, sent: int, failed: int, uncertain: int, now: datetime) -> None:
        if not self.completable:
            raise NotCompletable(self)
        self.status = DispatchStatus.COMPLETED
        self.sent, self.failed, self.uncertain, self.completed_at = sent, failed, uncertain, now


@dataclass(frozen=True)
class DispatchState:
    """A dispatch's key and status alone: what the sweep reads of every unfinished dispatch."""

    key: str
    status: DispatchStatus


class AlreadyFinal(Conflict):
    def __init__(self, delivery: "Delivery") -> None:
        super().__init__(f"the send of document {delivery.document_id!r} is {delivery.state} already")


class NotClaimable(Conflict):
    def __init__(self, delivery: "Delivery") -> None:
        super().__init__(f"the send of document {delivery.document_id!r} is {delivery.state} and held")


class NotHeld(Conflict):
    def __init__(self, delivery: "Delivery", holder: str | None) -> None:
        super().__init__(f"the send of document {delivery.document_id!r} is not being sent by {holder!r}")


@dataclass(frozen=True)
class AcceptedEmail:
    """One e-mail of a delivery the server took: a retry of the delivery skips it."""

    reply: str
    message_id: str


@dataclass(kw_only=True)
class Delivery:
    """One document's send, of a dispatch or typed by hand, or a plain e-mail's to one recipient (its
    `document_id` the customer number, nothing attached); also its line of the send history."""

    id: str
    tenant_id: str
    dispatch_key: str
    dispatch_id: str
    document_id: str
    document_number: str
    state: DeliveryState
    created_at: datetime
    kind: str = "dispatch"  # or "manual"
    correlation_id: str = ""
    document_type: str | None = None
    mailing_id: str = ""
    mailing_name: str = ""
    index: int = 0
    customer_number: str | None = None
    record_email: str | None = None
    recipient_name: str | None = None
    pdf_blob_id: str | None = None
    pdf_length: int | None = None  # read at the fan-out, so the send reads the PDF in one round trip
    fields: dict[str, str] = field(default_factory=dict)  # what its e-mail may name (DocumentFacts)
    docx_blob_id: str | None = None  # sent instead of the PDF to a recipient who wants the document type so
    attached: str = "pdf"  # or "docx": the file its e-mail carries; "none" (NO_ATTACHMENT): a plain e-mail
    # An invoice template's mailing: how it goes unless the directory says otherwise (pdf, facturx, ubl).
    einvoice_format: str | None = None
    # Its address was refused (or missing) at the last e-mailing of the document: the directory is asked first.
    prefer_directory: bool = False
    reason: str | None = None
    address_rule: str | None = None  # the directory's rule that gave its address
    address_failed: bool = False  # failed on its address: refused (5xx on RCPT), invalid or missing
    attempts: int = 0
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    separate_sends: bool = False
    subject: str | None = None
    smtp_reply: str | None = None
    message_id: str | None = None
    terms: list[str] = field(default_factory=list)
    finished_at: datetime | None = None
    # While a replica sends it: who, until when, and by which group of claims (repository.py).
    holder: str | None = None
    lease_until: datetime | None = None
    claim: str | None = None
    accepted: dict[str, AcceptedEmail] = field(default_factory=dict)  # envelope number → the server's answer
    last_error: str | None = None
    finish: str | None = None  # which handler's outcome write stored the outcome (repository.py)

    # Not stored until they have a value: a record as first written has the fields `new` gives it.
    SET_LATER = (
        "pdf_length", "cc", "bcc", "separate_sends", "smtp_reply", "message_id", "holder", "lease_until", "claim",
        "accepted", "last_error", "finish", "docx_blob_id", "prefer_directory", "address_rule", "address_failed",
        "einvoice_format",
    )  # fmt: skip
    # What an outcome writes besides its state (see `record`).
    OUTCOME = (
        "reason", "smtp_reply", "message_id", "subject", "terms", "to", "cc", "bcc", "separate_sends", "address_rule",
        "address_failed", "attached",
    )  # fmt: skip

    @classmethod
    def new(
        cls,
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
    ) -> "Delivery":
        """The one way a delivery record is made, a dispatch's or an immediate send's: queued, or failed at
        once with the reason `failed`; with the terms the history searches."""
        now = datetime.now(UTC)
        delivery = cls(
            id=delivery_id,
            kind=kind,
            dispatch_key=dispatch_key,
            dispatch_id=dispatch_id,
            tenant_id=tenant_id,
            correlation_id=correlation_id,
            document_type=document_type,
            mailing_id=mailing.id,
            mailing_name=mailing.name,
            document_id=document.id,
            index=document.index,
            document_number=document.document_number,
            customer_number=document.customer_number,
            record_email=document.email,
            recipient_name=document.recipient_name,
            pdf_blob_id=document.pdf_blob_id,
            fields=DocumentFacts.of(document, mailing, document_type).fields,
            docx_blob_id=document.docx_blob_id,
            einvoice_format=mailing.format if mailing.einvoices else None,
            prefer_directory=document.last_failure is not None and document.last_failure.kind == "address",
            state=DeliveryState.FAILED if failed else DeliveryState.QUEUED,
            reason=failed,
            to=to or [],
            subject=subject,
            created_at=now,
            finished_at=now if failed else None,
        )
        delivery.terms = delivery.history_terms()
        return delivery

    @classmethod
    def letter(
        cls, *, dispatch: Dispatch, index: int, recipient: RecipientRecord, facts: LetterFacts, subject: str | None
    ) -> "Delivery":
        """A plain e-mail's send to one recipient of its segment, queued; keyed by the customer number."""
        delivery = cls(
            id=delivery_id_for(dispatch.id, recipient.customer_number),
            kind="dispatch",
            dispatch_key=dispatch.id,
            dispatch_id=dispatch.dispatch_id,
            tenant_id=dispatch.tenant_id,
            correlation_id=dispatch.correlation_id,
            document_id=recipient.customer_number,
            index=index,
            document_number="",
            customer_number=recipient.customer_number,
            record_email=recipient.email,
            recipient_name=recipient.name,
            fields=facts.fields,
            attached=NO_ATTACHMENT,
            state=DeliveryState.QUEUED,
            subject=subject,
            created_at=datetime.now(UTC),
        )
        delivery.terms = delivery.history_terms()
        return delivery

    @property
    def is_letter(self) -> bool:
        """A plain e-mail's: no document behind it, nothing attached."""
        return self.attached == NO_ATTACHMENT

    def history_terms(self) -> list[str]:
        return history_terms(
            mailing_name=self.mailing_name,
            document_number=self.document_number,
            document_id=self.document_id,
            document_type=self.document_type,
            state=self.state,
            subject=self.subject,
        )

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def facts(self) -> DocumentFacts | LetterFacts:
        """What its e-mail may name; one recorded before deliveries kept their document's fields is dated the
        day it was recorded."""
        fields = {"date": dated(self.created_at), **self.fields}
        if self.is_letter:
            return LetterFacts(self.customer_number or "", self.recipient_name, fields)
        return DocumentFacts(self.document_number, self.document_type, self.recipient_name, self.customer_number, fields)

    @property
    def whose(self) -> str:
        """Where its variables come from, as a missing one's error says."""
        return RECIPIENT_RECORD if self.is_letter else DOCUMENT_RECORD

    def failure(self) -> Failure:
        """What dispatch.completed says of it, not sent: why, and whether its address failed (a re-send of the
        not-sent mailing then asks the directory first)."""
        return Failure(
            document_id=self.document_id,
            reason=self.reason or "failed",
            kind="address" if self.address_failed else None,
        )

    def claim_for(self, holder: str, lease_s: float, now: datetime) -> None:
        """queued → sending, owned by `holder` until the lease ends; also a send whose owner's lease ended
        (its replica died). Another try of the document."""
        lapsed = self.state is DeliveryState.SENDING and self.lease_until is not None and self.lease_until < now
        if self.state is not DeliveryState.QUEUED and not lapsed:
            raise NotClaimable(self)
        self.state, self.holder = DeliveryState.SENDING, holder
        self.lease_until = now + timedelta(seconds=lease_s)
        self.attempts += 1

    def release(self, holder: str, error: str) -> None:
        """sending → queued: the send will be tried again."""
        self._check_held(holder)
        self.state, self.last_error, self.lease_until, self.holder = DeliveryState.QUEUED, error, None, None

    def give_back(self, holder: str) -> None:
        """sending → queued, as it was before its claim: its e-mail did not go, nor was it tried (its
        dispatch paused before its turn), so the claim's attempt is taken off."""
        self._check_held(holder)
        self.state, self.lease_until, self.holder = DeliveryState.QUEUED, None, None
        self.attempts -= 1

    def take_back(self, holder: str | None) -> None:
        """sending → queued for a send whose holder is gone: it can be claimed again."""
        self._check_held(holder)
        self.state, self.holder, self.lease_until = DeliveryState.QUEUED, None, None

    def accept(self, holder: str, envelope: int, accepted: AcceptedEmail) -> None:
        self._check_held(holder)
        self.accepted[str(envelope)] = accepted

    def _check_held(self, holder: str | None) -> None:
        if self.state is not DeliveryState.SENDING or self.holder != holder:
            raise NotHeld(self, holder)

    def record(
        self,
        state: DeliveryState,
        *,
        reason: str | None = None,
        subject: str | None = None,
        addressing: Addressing | None = None,
        smtp_reply: str | None = None,
        message_id: str | None = None,
        address_failed: bool = False,
    ) -> None:
        """The final outcome, once, and what the history shows of it: recipients and the rule that gave
        them, subject (the one stored when none is given), server reply, error, and whether the address
        failed. The repository stores it while the record is still queued or being sent (`finish`)."""
        if self.state not in PENDING:
            raise AlreadyFinal(self)
        self.state, self.reason, self.smtp_reply, self.message_id = state, reason, smtp_reply, message_id
        self.address_failed = address_failed
        if subject is not None:
            self.subject = subject
        if addressing is not None:
            self.to, self.cc = addressing.to, addressing.cc
            self.bcc = addressing.bcc + ([addressing.sender_copy] if addressing.sender_copy else [])
            self.separate_sends = addressing.separate
            self.address_rule = addressing.rule
        self.terms = self.history_terms()
        self.lease_until, self.finished_at = None, datetime.now(UTC)


@dataclass(frozen=True)
class AccountLimits:
    connections: int = 4
    rate_per_s: int | None = None
    daily_cap: int | None = None


@dataclass(kw_only=True)
class SendingAccount:
    """A tenant's SMTP account as stored: the password only ever sealed (accounts.Accounts opens it into
    the domain.Account a send uses)."""

    id: str
    tenant_id: str
    name: str
    host: str
    port: int
    tls: TlsMode
    from_address: str
    created_at: datetime
    updated_at: datetime
    version: int = 1
    verify_certificate: bool = True
    login: str | None = None
    password_sealed: str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    limits: AccountLimits = field(default_factory=AccountLimits)
    pause_after_errors: int | None = None
    owner: str | None = None  # whose personal account it is
    shared_with_users: list[str] = field(default_factory=list)
    # An account stored before sharing existed is shared with every role that sends.
    shared_with_roles: list[str] = field(default_factory=lambda: sorted(SENDING_ROLES))

    @property
    def sharing(self) -> Sharing:
        return Sharing(
            owner=self.owner, users=frozenset(self.shared_with_users), roles=frozenset(self.shared_with_roles)
        )

    def make_personal(self, owner: str) -> None:
        """Its owner's alone: only they send through it, and only they change it."""
        self.owner, self.shared_with_users, self.shared_with_roles = owner, [], []

    def check_password_kept(self, after: "SendingAccount", password_given: bool) -> None:
        """An edit that keeps the stored password keeps it going where it went: same host, port, login and
        TLS mode, and the certificate still checked if it was."""
        if password_given or not self.password_sealed:
            return
        changed = [name for name in PASSWORD_BOUND_FIELDS if getattr(self, name) != getattr(after, name)]
        if self.verify_certificate and not after.verify_certificate:
            changed.append("verify_certificate")
        if changed:
            raise AccountInvalid(
                "password",
                f"give the password again: {', '.join(changed)} changed, and the stored password only goes to "
                "the server it was given for",
            )


@dataclass(frozen=True)
class SealedPassword:
    """An account's sealed password alone: what re-sealing every password reads."""

    tenant_id: str
    account_id: str
    token: str


class EmailTurnedOff(Conflict):
    def __init__(self, tenant_id: str) -> None:
        super().__init__(
            f"e-mail distribution is turned off for tenant {tenant_id!r}; an admin turns it on (PUT /settings/sending)"
        )


class NoSenderDomain(Invalid):
    def __init__(self) -> None:
        super().__init__("sender_prefix: the platform has no sender domain to put it on (PUBLIPOST_SENDER_DOMAIN)")


class NotALocalPart(Invalid):
    def __init__(self, prefix: str) -> None:
        super().__init__(f"sender_prefix: {prefix!r} is not the local part of an e-mail address (before the @)")


@dataclass(kw_only=True)
class TenantSending:
    """A tenant's choices for sending (its id is the tenant's): whether it distributes by e-mail at all, and
    the prefix its e-mails through the default account go from, on the platform's sender domain."""

    id: str
    email_enabled: bool = True
    sender_prefix: str | None = None

    def choose_prefix(self, prefix: str | None, domain: str) -> None:
        if prefix is not None:
            if not domain:
                raise NoSenderDomain()
            # The platform's domain is valid: an address refused is a local part refused.
            if "@" in prefix or len(prefix) > 64 or not is_valid_address(f"{prefix}@{domain}"):
                raise NotALocalPart(prefix)
        self.sender_prefix = prefix

    def sender(self, domain: str) -> str | None:
        """The default account's From address for this tenant; None: the service's own (PUBLIPOST_SENDER)."""
        return f"{self.sender_prefix}@{domain}" if self.sender_prefix and domain else None

    def check_email_enabled(self) -> None:
        """Checked before anything goes: a dispatch already sending goes on (docs/dispatch.md)."""
        if not self.email_enabled:
            raise EmailTurnedOff(self.id)
