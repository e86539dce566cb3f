"""Dispatch rules, free of I/O: delivery states, what an SMTP answer means, who gets which e-mail,
subject and body variables, sending accounts and their limits, the error threshold, history search."""

import html
import ipaddress
import re
import string
from dataclasses import dataclass, field
from datetime import date, timedelta
from email.utils import formataddr
from enum import StrEnum
from typing import Any

from publipost_addresses import control_character, invalid_address_message, is_valid_address
from publipost_contracts import DispatchRequested, EmailsRequested, Requester, deterministic_id
from publipost_contracts.reads import DocumentView, MailingView, RecipientRecord
from publipost_refusals import Invalid


class DeliveryState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # a replica owns it until its lease ends; see docs/dispatch.md, "No double send"
    SENT = "sent"
    FAILED = "failed"
    # The server took the whole message and then went silent or hung up before answering: it may have
    # been delivered. Never sent again automatically; a person decides (docs/dispatch.md, "Outcomes").
    UNCERTAIN = "uncertain"


PENDING = (DeliveryState.QUEUED, DeliveryState.SENDING)
# Every send typed by hand is filed under this key, so the sweep finds one interrupted with one lookup.
MANUAL_SENDS = "manual"
FINAL = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.UNCERTAIN)
NOT_SENT = (DeliveryState.FAILED, DeliveryState.UNCERTAIN)


class DispatchStatus(StrEnum):
    FANNING_OUT = "fanning_out"
    SENDING = "sending"
    PAUSED = "paused"
    COMPLETED = "completed"
    REFUSED = "refused"


class SendWithdrawn(Exception):
    """An e-mail not sent, nor tried: its send was no longer wanted when its turn came (its dispatch paused)."""


UNFINISHED = (DispatchStatus.FANNING_OUT, DispatchStatus.SENDING, DispatchStatus.PAUSED)
# Those whose sends wait: queued, and given back by the sends about to go.
HOLDING = (DispatchStatus.PAUSED, DispatchStatus.REFUSED)
# Those that complete once every document has its outcome (a completed one announces it again, same id).
COMPLETABLE = (DispatchStatus.SENDING, DispatchStatus.PAUSED, DispatchStatus.COMPLETED)


class Verdict(StrEnum):
    RETRY = "retry"
    FAILED = "failed"


def dispatch_key(tenant_id: str, dispatch_id: str) -> str:
    return str(deterministic_id("dispatch", tenant_id, dispatch_id))


def delivery_id_for(dispatch_key_: str, document_id: str) -> str:
    return str(deterministic_id("delivery", dispatch_key_, document_id))


def message_id_for(delivery_id: str, envelope: int, domain: str) -> str:
    """One Message-ID per e-mail of a delivery: a resend after a crash is recognisable as the same message."""
    return f"<{delivery_id}{f'.{envelope}' if envelope else ''}@{domain}>"


def verdict_for_reply(code: int) -> Verdict:
    """4xx is a temporary refusal worth retrying; 5xx is final."""
    return Verdict.RETRY if 400 <= code < 500 else Verdict.FAILED


def verdict_for_attempt(verdict: Verdict, attempts: int, max_attempts: int) -> Verdict:
    """A temporary failure becomes final once the document has had its tries."""
    return Verdict.FAILED if verdict is Verdict.RETRY and attempts >= max_attempts else verdict


def should_pause(errors: int, threshold: int) -> bool:
    """Like listmonk's "maximum error threshold": too many SMTP errors stop the run instead of burning the list."""
    return errors >= threshold


# --- headers and addresses ----------------------------------------------------------


class UnsafeHeader(Invalid, ValueError):
    """A header value carrying a control character: CR or LF could smuggle extra headers into the message,
    NUL, VT, FF and the others break the header or the file name a mail client shows."""

    def __init__(self, field: str, value: str, character: str) -> None:
        kind = "a line break" if character in ("U+000D", "U+000A") else f"the control character {character}"
        super().__init__(f"{field} {value[:60]!r} contains {kind} (header injection refused)")
        self.field = field


class InvalidAddress(Invalid, ValueError):
    def __init__(self, field: str, value: str) -> None:
        message = invalid_address_message(value.strip()) or f"{value!r} is not a valid e-mail address"
        super().__init__(f"{field}: {message}")
        self.field = field


def check_header(field: str, value: str) -> str:
    if (character := control_character(value)) is not None:
        raise UnsafeHeader(field, value, character)
    return value


def check_address(field: str, value: str) -> str:
    check_header(field, value)
    address = value.strip()
    if not is_valid_address(address):
        raise InvalidAddress(field, value)
    return address


def too_many_recipients(to: list[str], cc: list[str], bcc: list[str], limit: int) -> tuple[str, str] | None:
    """(the field where the count passes `limit`, why) when to, cc and bcc together name too many addresses:
    one send is one e-mail to a few people, not a mass mailing hidden in a Bcc."""
    total = len(to) + len(cc) + len(bcc)
    if total <= limit:
        return None
    where = "to" if len(to) > limit else "cc" if len(to) + len(cc) > limit else "bcc"
    message = (
        f"to, cc and bcc name {total} addresses ({len(to)}, {len(cc)}, {len(bcc)}); "
        f"at most {limit} per send (PUBLIPOST_MAX_RECIPIENTS_PER_SEND)"
    )
    return where, message


def check_message(event: DispatchRequested | EmailsRequested, max_recipients: int) -> None:
    """What the HTTP API refuses with 422, checked again for a dispatch.requested or emails.requested published
    on the bus: the number of addresses, each address, and a subject free of control characters (Invalid)."""
    to = event.to if isinstance(event, DispatchRequested) else []
    if (over := too_many_recipients(to, event.cc, event.bcc, max_recipients)) is not None:
        raise Invalid(f"{over[0]}: {over[1]}")
    fields = {"to": to, "cc": event.cc, "bcc": event.bcc, "reply_to": [event.reply_to] if event.reply_to else []}
    for field_name, values in fields.items():
        for value in values:
            check_address(field_name, value)
    check_header("subject", event.subject)


@dataclass(frozen=True)
class Envelope:
    """One e-mail of a delivery: what its headers say and whom SMTP hands it to."""

    to: list[str]
    cc: list[str]
    recipients: list[str]
    required: list[str]  # refused by the server, these fail the e-mail; the others are copies


@dataclass(frozen=True)
class Addressing:
    to: list[str]
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    sender_copy: str | None = None
    separate: bool = False
    rule: str | None = None  # the directory's rule that gave `to` (record, directory, contact...); None: typed

    def checked(self) -> "Addressing":
        """Every address valid and free of line breaks, named by its field if not."""
        return Addressing(
            to=[check_address("to", a) for a in self.to],
            cc=[check_address("cc", a) for a in self.cc],
            bcc=[check_address("bcc", a) for a in self.bcc],
            sender_copy=check_address("copy to sender", self.sender_copy) if self.sender_copy else None,
            separate=self.separate,
            rule=self.rule,
        )

    def envelopes(self) -> list[Envelope]:
        """Shared: one e-mail, Bcc and the sender's copy on the envelope only. Separate: one e-mail per address,
        each with that address alone in To. The document's own recipients come first, so copies go only
        once the server has accepted the e-mail for them."""
        copies = _unique([*self.cc, *self.bcc, *([self.sender_copy] if self.sender_copy else [])], self.to)
        if not self.separate:
            return [Envelope(self.to, self.cc, [*self.to, *copies], self.to)]
        return [Envelope([a], [], [a], [a]) for a in [*self.to, *copies]]


def _unique(addresses: list[str], already: list[str]) -> list[str]:
    seen = {a.lower() for a in already}
    out = []
    for address in addresses:
        if address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return out


# --- subject and body ---------------------------------------------------------------


DOCUMENT_RECORD = "this document's record"
RECIPIENT_RECORD = "this recipient's record"


class UnknownVariable(Invalid, KeyError):
    """A {name} the document (or a plain e-mail's recipient) does not fill: neither one dispatch always knows
    nor a field of its record."""

    def __init__(self, field: str, name: str, whose: str = DOCUMENT_RECORD) -> None:
        super().__init__(f"{field}: no value for {{{name}}} in {whose}")
        self.field = field
        self.name = name

    def __str__(self) -> str:
        return self.args[0]


class BadTemplate(Invalid, ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}; write {{{{ and }}}} for a literal brace")
        self.field = field


# Placeholders of the products Publipost replaces; the template service stores them as {names} already.
LEGACY_PLACEHOLDERS = {"<NUMFACT>": "{document_number}", "<DATEFACT>": "{date}", "<NOMSOC>": "{client_name}"}


# What a document type is called in a text, and the subject it gets when neither the dispatch nor its
# e-mail template gives one (the keys are DispatchRequested.document_type, as document_kind writes them).
DOCUMENT_TYPES: dict[str, tuple[str, str]] = {
    "invoice": ("Invoice", "Your invoice {document_number}"),
    "credit_note": ("Credit note", "Your credit note {document_number}"),
    "quote": ("Quote", "Your quote {document_number}"),
    "order": ("Order", "Your order {document_number}"),
    "delivery_note": ("Delivery note", "Your delivery note {document_number}"),
    "statement": ("Statement", "Your statement {document_number}"),
    "reminder": ("Payment reminder", "Payment reminder {document_number}"),
    "payment_reminder": ("Payment reminder", "Payment reminder {document_number}"),
    "due_notice": ("Due notice", "Due notice {document_number}"),
    "unpaid_premium_reminder": ("Unpaid premium reminder", "Unpaid premium reminder {document_number}"),
    "premium_receipt": ("Premium receipt", "Your premium receipt {document_number}"),
    "contract": ("Contract", "Your contract {document_number}"),
    "payslip": ("Payslip", "Your payslip {document_number}"),
    "staff_list": ("Staff list", "Staff list {document_number}"),
}
ANY_DOCUMENT = ("Document", "Your document {document_number}")


def document_kind(document_type: str | None) -> tuple[str, str]:
    """The label and preset subject of a document type ("Staff list", "staff-list" and "staff_list" alike);
    a type without a preset, or none, is a document. Never the mailing's name: that is an internal label
    ("Notices (not sent by e-mail)") a client must not see."""
    key = re.sub(r"[\s-]+", "_", (document_type or "").strip().lower())
    return DOCUMENT_TYPES.get(key, ANY_DOCUMENT)


@dataclass(frozen=True)
class DocumentFacts:
    """What a subject or a body may name about the document being sent: a few variables dispatch always
    fills, then its record's own fields (DocumentView.fields), `date` the document's date."""

    document_number: str
    document_type: str | None
    recipient_name: str | None
    customer_number: str | None
    fields: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, document: DocumentView, mailing: MailingView, document_type: str | None) -> "DocumentFacts":
        """A document as merge lists it; one listed before documents carried their record's fields is dated
        by its mailing, as its rendering was."""
        fields = {"date": dated(mailing.created_at), **document.fields}
        return cls(document.document_number, document_type, document.recipient_name, document.customer_number, fields)

    def variables(self) -> dict[str, str]:
        return {
            **self.fields,
            "document_number": self.document_number,
            "document_name": document_kind(self.document_type)[0],
            "client_name": self.recipient_name or "",
            "customer_number": self.customer_number or "",
        }


def dated(moment: date) -> str:
    """A date as merge writes it in documents (publipost_merge.domain.DATE_FORMAT)."""
    return moment.strftime("%d/%m/%Y")


def _parsed(field: str, template: str) -> list[tuple[str, str | None]]:
    """The text's literal pieces, each with the {name} that follows it (None at the end)."""
    for legacy, modern in LEGACY_PLACEHOLDERS.items():
        template = template.replace(legacy, modern)
    try:
        return [(literal, name) for literal, name, _spec, _conversion in string.Formatter().parse(template)]
    except ValueError as exc:
        raise BadTemplate(field, str(exc)) from exc


def fill(
    field: str, template: str, variables: dict[str, Any], *, escape: bool = False, whose: str = DOCUMENT_RECORD
) -> str:
    """Replace {name} variables ({{ and }} are literal braces, as the template service stores them);
    a name the document does not have is an error naming it. `escape` for HTML bodies."""
    out = []
    for literal, name in _parsed(field, template):
        out.append(literal)
        if name is None:
            continue
        if name not in variables:
            raise UnknownVariable(field, name, whose)
        value = str(variables[name])
        out.append(html.escape(value) if escape else value)
    return "".join(out)


@dataclass(frozen=True)
class EmailText:
    """The subject and bodies of a dispatch before variables are filled."""

    subject: str
    body: str
    html_body: str | None = None
    signature: str = ""

    @classmethod
    def given(cls, subject: str, body: str, document_type: str | None) -> "EmailText":
        """As a request gives it: an empty subject is the document type's preset."""
        return cls(subject=subject or document_kind(document_type)[1], body=body)

    def render(self, variables: dict[str, Any], whose: str = DOCUMENT_RECORD) -> tuple[str, str, str | None]:
        subject = check_header("subject", fill("subject", self.subject, variables, whose=whose))
        body = fill("body", self.body, variables, whose=whose)
        html_body = fill("html_body", self.html_body, variables, escape=True, whose=whose) if self.html_body else None
        if self.signature:
            signature = fill("signature", self.signature, variables, whose=whose)
            body = f"{body.rstrip()}\n\n-- \n{signature}\n"
            if html_body is not None:
                html_body += "<p>" + html.escape(signature).replace("\n", "<br>") + "</p>"
        return subject, body, html_body

    def variables(self) -> dict[str, list[str]]:
        """The {names} each of its texts uses, by field; BadTemplate for a text that cannot be filled."""
        texts = {"subject": self.subject, "body": self.body, "html_body": self.html_body or ""}
        texts["signature"] = self.signature
        return {field: [name for _, name in _parsed(field, text) if name] for field, text in texts.items()}


# --- plain e-mails ------------------------------------------------------------------

NO_ATTACHMENT = "none"  # what a plain e-mail's delivery attaches (Delivery.attached)
# What only a document has: a plain e-mail to a segment's recipients names neither.
DOCUMENT_ONLY_VARIABLES = ("document_number", "document_name")


class NotALetterVariable(Invalid):
    def __init__(self, field: str, names: list[str]) -> None:
        shown = ", ".join(f"{{{name}}}" for name in names)
        super().__init__(
            f"{field}: a plain e-mail has no document, so nothing fills {shown}; it names {{client_name}}, "
            "{customer_number}, {date} and the recipient's fields and attributes ({postal_code}, {inspection_due}…)"
        )
        self.field = field


def check_letter_text(text: EmailText) -> None:
    """A plain e-mail's text names nothing a recipient's record cannot fill, whichever recipient: a document's
    variables are refused before anything goes. A field or attribute a recipient lacks fails that e-mail alone."""
    for where, names in text.variables().items():
        wrong = sorted({name for name in names if name in DOCUMENT_ONLY_VARIABLES})
        if wrong:
            raise NotALetterVariable(where, wrong)


@dataclass(frozen=True)
class LetterFacts:
    """What a plain e-mail may name about its recipient: its name ({client_name}), customer number, the day
    the e-mail was asked for ({date}), and its record's single values and custom attributes by name."""

    customer_number: str
    recipient_name: str | None
    fields: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, record: RecipientRecord, day: date) -> "LetterFacts":
        """The record's own values win over an attribute of the same name; an empty value is no value."""
        values = {**record.attributes, **(record.model_extra or {}), "email": record.email, "name": record.name}
        fields = {name: str(value) for name, value in values.items() if _single(value)}
        return cls(record.customer_number, record.name, {"date": dated(day), **fields})

    def variables(self) -> dict[str, str]:
        return {**self.fields, "client_name": self.recipient_name or "", "customer_number": self.customer_number}


def _single(value: object) -> bool:
    return isinstance(value, str | int | float | bool) and str(value) != ""


EINVOICE_FORMATS = ("pdf", "facturx", "ubl")


def einvoice_format(mailing_format: str | None, wanted: str | None) -> str | None:
    """How an invoice goes to a recipient: the directory's format for them wins over the mailing's; None when the
    mailing's documents are no e-invoices (or the recipient wants the DOCX)."""
    if mailing_format is None or wanted == "docx":
        return None
    return wanted if wanted in EINVOICE_FORMATS else mailing_format


def attachment_name(document_number: str, extension: str = "pdf") -> str:
    """The file is named after the document number; separators would make it a path in some clients."""
    return re.sub(r'[\\/:*?"<>|]', "_", check_header("document number", document_number)).strip() + f".{extension}"


# --- sending accounts ----------------------------------------------------------------


class TlsMode(StrEnum):
    NONE = "none"  # plain text: only for a server on this machine (or one listed in plain_smtp_hosts)
    STARTTLS = "starttls"
    TLS = "tls"  # implicit TLS from the first byte (port 465)


class AccountInvalid(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def is_local_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_tls(host: str, tls: TlsMode, plain_hosts: list[str]) -> None:
    """A password or a document never crosses a network in clear text."""
    if tls is TlsMode.NONE and not is_local_host(host) and host.lower() not in {h.lower() for h in plain_hosts}:
        raise AccountInvalid("tls", f"'none' is only for a server on this machine; {host!r} needs starttls or tls")


# Where a stored password goes, and how: changing any of these without giving the password again would
# let whoever may edit the account hand the password to a server of their choosing.
PASSWORD_BOUND_FIELDS = ("host", "port", "login", "tls")


@dataclass(frozen=True)
class Limits:
    connections: int
    rate_per_s: int | None = None
    daily_cap: int | None = None


SENDING_ROLES = frozenset({"operator", "integrator"})
"""Who may start a dispatch: a tenant's account is shared with them all unless its admin says otherwise."""


@dataclass(frozen=True)
class Sharing:
    """Who may send through a sending account: a person's own account, its owner alone; a tenant's account,
    the users and roles it is shared with (docs/identity.md, "Sending accounts and people")."""

    owner: str | None = None
    users: frozenset[str] = frozenset()
    roles: frozenset[str] = SENDING_ROLES

    def allows(self, requester: Requester | None) -> bool:
        """Whether `requester` may send through the account. None is an integrating system over the bus: it
        sends as the integrator role does."""
        if self.owner is not None:
            return requester is not None and requester.subject == self.owner
        if requester is None:
            return "integrator" in self.roles
        return requester.subject in self.users or bool(self.roles & set(requester.roles))


@dataclass(frozen=True)
class Account:
    """Everything a sender needs to talk to one SMTP server on a tenant's behalf."""

    account_id: str
    version: int
    host: str
    port: int
    tls: TlsMode
    login: str | None
    password: str | None
    from_address: str
    from_name: str | None
    reply_to: str | None
    limits: Limits
    pause_after_errors: int
    verify_certificate: bool = True
    sharing: Sharing = Sharing()

    @property
    def message_id_domain(self) -> str:
        return self.from_address.rpartition("@")[2] or "publipost"

    @property
    def sender(self) -> str:
        """The From header: the display name, encoded when it is not ASCII, and the address."""
        return formataddr((self.from_name, self.from_address)) if self.from_name else self.from_address


# --- history ------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def search_terms(*texts: str | None) -> list[str]:
    """Lower-cased words of the subject, document name and number: what free-text search matches whole."""
    return sorted({w.lower() for text in texts if text for w in _WORD.findall(text)})


def history_status(state: str) -> str:
    """What the history shows: a send being made is still queued until its outcome is stored."""
    return DeliveryState.QUEUED.value if state in PENDING else str(state)


def history_terms(
    *,
    mailing_name: str,
    document_number: str,
    document_id: str,
    document_type: str | None,
    state: str,
    subject: str | None,
) -> list[str]:
    """Everything the history finds a send by, in the one indexed array of its record: the words of its
    subject, document name and number, and one `name=value` term per filter ("*" for every send).
    A term with "=" is never a word (words are letters and digits), so a search cannot hit a filter.

    One multikey index serves every filter: on the embedded database each index of the collection costs
    every claim and outcome of a send, even one whose keys the write leaves alone."""
    terms = set(search_terms(subject, mailing_name, document_number))
    terms |= {"*", history_term("status", history_status(state)), history_term("document", document_id)}
    if document_type:
        terms.add(history_term("type", document_type))
    return sorted(terms)


def history_term(name: str, value: str) -> str:
    return f"{name}={value}"


FIRST_HISTORY_WINDOW = timedelta(minutes=1)
WIDEST_HISTORY_WINDOW = timedelta(days=730)


def wider_history_window(
    window: timedelta, newest_age: timedelta | None, found: int, wanted: int
) -> timedelta | None:
    """The next time window to look for a page of history in, after `window` held `found` of the
    `wanted` matches, its newest candidate `newest_age` old (None: it held none); None means no window.

    The database sorts every candidate of a window, so the cost follows the window's width: a window
    with matches is widened just enough to hold the page at the rate it showed (with a quarter to spare,
    2 to 16 times its span of sends), an empty one four times."""
    if found and newest_age is not None and newest_age < window:
        span = window - newest_age
        wider = newest_age + span * max(2.0, min(16.0, wanted / found * 1.25))
    else:
        wider = window * 4
    return None if wider > WIDEST_HISTORY_WINDOW else wider
