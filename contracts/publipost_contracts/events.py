"""Every message that travels on the bus, one class each, in the order of a mailing's life."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .envelope import Event

Id = str
OutputFormat = Literal["docx", "pdf"]
# How an invoice goes by e-mail: the PDF, a Factur-X PDF (CII XML inside), or the PDF with a UBL 2.1 XML beside it.
EInvoiceFormat = Literal["pdf", "facturx", "ubl"]
# What a recipient asks for per document type (the recipient directory's format).
RecipientFormat = Literal["docx", "pdf", "facturx", "ubl"]
FacturxLevel = Literal["minimum", "basicwl", "basic", "en16931"]
# render-pdf's converters: its LibreOffice pool (the tenant's included quota) or a Gotenberg server.
ConverterName = Literal["libreoffice", "gotenberg"]
# A non-standard type makes merge announce each document to the owning system (document.side_effect).
TemplateType = Literal["standard", "payment_reminder", "due_notice", "unpaid_premium_reminder"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- template -----------------------------------------------------------------


class TemplateRegistered(Event):
    """A template, or a new version of one, is stored and usable."""

    type: Literal["template.registered"] = "template.registered"
    template_id: Id
    name: str
    version: int
    fields: list[str]
    custom_fields: list[str] = Field(default_factory=list, description="Values asked at generation time.")
    template_type: TemplateType = "standard"


# --- merge --------------------------------------------------------------------


class MergeRequested(Event):
    """An internal system asks for one document per record.

    Records travel inline for small requests; a large request stores them in
    GridFS as NDJSON (one JSON object a line) and passes `records_file_id`.
    Each record needs an `id`; `email`, `customer_number` and
    `document_number` are used by dispatch when present.
    """

    type: Literal["merge.requested"] = "merge.requested"
    request_id: Id = Field(min_length=1, max_length=128, description="Idempotency key: one mailing per request id.")
    template_id: Id
    template_version: int | None = Field(default=None, ge=1, description="A version; the latest when absent.")
    name: str | None = Field(default=None, max_length=200)
    entity_type: str = "client"
    records: list[dict[str, Any]] | None = None
    records_file_id: Id | None = None
    custom_fields: dict[str, str] = Field(default_factory=dict)
    output: OutputFormat = "pdf"
    format: EInvoiceFormat = Field(
        default="pdf",
        description="For an invoice or credit note template: how its documents go by e-mail unless the recipient "
        "directory says otherwise (pdf, facturx: the Factur-X PDF, ubl: the PDF and a UBL 2.1 XML).",
    )
    missing_fields: Literal["refuse", "render_empty"] = Field(
        default="refuse",
        description="Records lacking a field the template uses: refuse the request, or render those fields "
        "empty and list the records in merge.completed's warnings.",
    )

    @model_validator(mode="after")
    def _records_one_way(self) -> MergeRequested:
        if (self.records is None) == (self.records_file_id is None):
            raise ValueError("give exactly one of records (inline) or records_file_id (GridFS NDJSON)")
        return self


class Problem(_Part):
    field: str
    message: str
    record_index: int | None = None


class MergeRejected(Event):
    """The request was refused before any document was made; each problem names its field and record."""

    type: Literal["merge.rejected"] = "merge.rejected"
    request_id: Id
    problems: list[Problem]


class DocumentSideEffect(Event):
    """One per document of a non-standard template (payment reminder, due notice...): the owning
    system records it (a reminder sent, a notice issued) against its own record."""

    type: Literal["document.side_effect"] = "document.side_effect"
    mailing_id: Id
    document_id: Id
    record_id: str
    template_type: TemplateType


class RenderItem(_Part):
    document_id: Id
    docx_blob_id: Id
    facturx_level: FacturxLevel | None = Field(
        default=None,
        description="An invoice whose CII XML merge stored: render-pdf also makes its Factur-X PDF (PDF/A-3 with "
        "the XML embedded) at this profile.",
    )


class RenderRequested(Event):
    """merge asks render-pdf to convert a chunk of a mailing's DOCX documents to PDF."""

    type: Literal["render.requested"] = "render.requested"
    mailing_id: Id
    chunk: int
    documents: list[RenderItem]
    count_only: bool = Field(
        default=False,
        description="Only each document's page count (a Word mailing's print file is split by it): no PDF is "
        "stored, and the conversion is not counted against the yearly quota.",
    )


class RenderResult(_Part):
    document_id: Id
    pdf_blob_id: Id | None = None
    page_count: int = 0
    error: str | None = None
    backend: ConverterName | None = Field(
        default=None, description="What converted it: libreoffice (the included quota) or gotenberg (a paid one)."
    )


class DocumentsRendered(Event):
    """render-pdf's answer for one chunk: each document's PDF and page count, or why it failed."""

    type: Literal["documents.rendered"] = "documents.rendered"
    mailing_id: Id
    chunk: int
    results: list[RenderResult]


class CombinedPart(_Part):
    """One file of the print file: whole documents only, up to the tenant's page limit."""

    number: int
    blob_id: Id
    documents: int
    pages: int


class MergeCompleted(Event):
    """The mailing is settled; this is also the requester's notification, with what to look at."""

    type: Literal["merge.completed"] = "merge.completed"
    request_id: Id
    mailing_id: Id
    name: str
    status: Literal["ready", "pending_validation", "failed"]
    documents: int
    failed: int
    parts: list[CombinedPart] = Field(default_factory=list)
    warnings: list[Problem] = Field(default_factory=list, description="At most WARNINGS_LISTED; see warnings_count.")
    warnings_count: int = 0

    WARNINGS_LISTED: ClassVar[int] = 1000


class MailingRegrouped(Event):
    """A dispatched mailing was replaced by its sent and not-sent mailings."""

    type: Literal["merge.mailing_regrouped"] = "merge.mailing_regrouped"
    dispatch_id: Id
    source_mailing_id: Id
    sent_mailing_id: Id | None
    not_sent_mailing_id: Id | None
    sent: int
    not_sent: int


# --- recipient directory --------------------------------------------------------


class AddressQuestion(_Part):
    key: str = Field(min_length=1, max_length=128, description="Names the answer to this question.")
    customer_number: str | None = None
    record_email: str | None = None
    correspondence_type: str | None = Field(default=None, description="Picks the contact who receives this kind.")
    prefer_directory: bool = Field(
        default=False,
        description="The record's address was refused before: the directory's addresses come first, the record's last.",
    )
    document_type: str | None = Field(
        default=None, max_length=64, description="What the document is: picks the recipient's preferred format."
    )


class AddressAnswer(_Part):
    key: str
    email: str | None
    rule: Literal["record", "directory", "contact", "billing", "main"] | None
    cc: list[str] = Field(default_factory=list, description="The directory's copies for this recipient.")
    reason: str | None = None
    format: RecipientFormat | None = Field(
        default=None,
        description="The form the recipient wants this document type in; none: not in the directory, or no form "
        "stated (the document goes as its mailing makes it).",
    )


class ResolveRecipients(Event):
    """Request/reply: which address should each of these documents go to? Asked for many documents at
    once, so the directory answers a whole batch of sends with one lookup."""

    MAX_QUESTIONS: ClassVar[int] = 500

    type: Literal["recipients.resolve"] = "recipients.resolve"
    questions: list[AddressQuestion] = Field(min_length=1, max_length=MAX_QUESTIONS)


class RecipientsResolved(Event):
    """The directory's answer to ResolveRecipients: an address (or why none) per question, and the rule used."""

    type: Literal["recipients.resolved"] = "recipients.resolved"
    answers: list[AddressAnswer] = Field(description="One per question, under the question's key.")


# --- dispatch -------------------------------------------------------------------


class Requester(_Part):
    """Who asked for a dispatch, as Publipost authenticated them: the sending account's sharing is checked
    against it. Only Publipost's services set it (a bus message of anyone else naming it is dead-lettered)."""

    subject: str = Field(min_length=1, max_length=256, description="The token's `sub`, or the API key's id.")
    roles: list[Literal["admin", "operator", "viewer", "integrator"]] = Field(default_factory=list)
    email: str | None = Field(
        default=None,
        max_length=254,
        description="The person's address, as their token says it: told when the dispatch they started ends or pauses.",
    )


class DispatchRequested(Event):
    """E-mail each document of a ready mailing to its recipient (once per dispatch id)."""

    type: Literal["dispatch.requested"] = "dispatch.requested"
    dispatch_id: Id = Field(min_length=1, max_length=128, description="Idempotency key: one dispatch per id.")
    mailing_id: Id
    subject: str = Field(
        default="",
        max_length=998,
        description="Empty: the e-mail template's subject, else the preset of the document type (\"Your invoice "
        '{document_number}"), else "Your document {document_number}"; never the mailing\'s name.',
    )
    body: str = Field(default="Please find your document attached.\n")
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    reply_to: str | None = None
    to: list[str] = Field(
        default_factory=list, description="Fixed recipients for every document instead of each one's own address."
    )
    separate_sends: bool = Field(default=False, description="One e-mail per address instead of a shared BCC.")
    copy_to_sender: bool = Field(default=False, description="The sender gets a copy of each e-mail.")
    account_id: Id | None = Field(
        default=None, description="The tenant's sending account; dispatch's own SMTP server when absent."
    )
    email_template_id: Id | None = Field(
        default=None, description="An e-mail template of the template service; replaces subject and body when given."
    )
    document_type: str | None = Field(
        default=None,
        max_length=64,
        description="What the documents are (invoice, quote...): the send history's filter, and the document "
        "type whose preferred format (PDF or DOCX) the recipient directory gives.",
    )
    correspondence_type: str | None = Field(
        default=None,
        max_length=64,
        description="The kind of correspondence (billing, claims...): each document goes to the recipient's "
        "contact for it in the directory, when there is one.",
    )
    requested_by: Requester | None = Field(
        default=None,
        description="The person or API key that asked (over HTTP, or as a campaign's author). Absent: an "
        "integrating system over the bus, which sends through the accounts shared with the integrator role.",
    )
    regroup: bool = Field(
        default=True,
        description="Whether merge replaces the mailing by its sent / not-sent mailings once the dispatch is "
        "complete. A campaign sends False: its published mailing goes again at the next occurrence.",
    )
    document_date: date | None = Field(
        default=None,
        description="The date the e-mail's {date} (<DATEFACT>) names instead of the document's own: a "
        "campaign's occurrence day when it advances the document's date.",
    )
    document_ids: list[Id] | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="Only these documents of the mailing. The mailing is then left as it is, not regrouped: "
        "each document shows its e-mail state, and the others can be sent later.",
    )


class EmailsRequested(Event):
    """E-mail a plain letter, without attachment, to every recipient of a directory segment (a garage's
    "your car's inspection is due"); once per email_id. Dispatch follows it as a dispatch of that id."""

    type: Literal["emails.requested"] = "emails.requested"
    email_id: Id = Field(
        min_length=1,
        max_length=128,
        description="Idempotency key: one dispatch per id, and that dispatch's id (dispatch.completed's "
        "dispatch_id). It shares the tenant's dispatch ids: a dispatch_id already used is that dispatch.",
    )
    segment_id: Id = Field(description="The recipient directory's segment, its recipients as they are when it starts.")
    subject: str = Field(
        default="",
        max_length=998,
        description="Filled from each recipient's record: {client_name}, {customer_number}, {date} (the day it "
        "starts), and the record's fields and attributes ({inspection_due}); no {document_number}: there is no "
        "document.",
    )
    body: str = Field(default="", description="The text, filled as the subject is.")
    email_template_id: Id | None = Field(
        default=None, description="An e-mail template of the template service; replaces subject and body when given."
    )
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    reply_to: str | None = None
    separate_sends: bool = Field(default=False, description="One e-mail per address instead of a shared BCC.")
    copy_to_sender: bool = Field(default=False, description="The sender gets a copy of each e-mail.")
    account_id: Id | None = Field(
        default=None, description="The tenant's sending account; dispatch's own SMTP server when absent."
    )
    correspondence_type: str | None = Field(
        default=None,
        max_length=64,
        description="The kind of correspondence: each e-mail goes to the recipient's contact for it, when the "
        "directory has one.",
    )
    requested_by: Requester | None = Field(
        default=None,
        description="The person or API key that asked over HTTP; absent: an integrating system over the bus.",
    )

    @model_validator(mode="after")
    def _says_something(self) -> EmailsRequested:
        if self.email_template_id is None and not (self.subject.strip() and self.body.strip()):
            raise ValueError("give a subject and a body, or an email_template_id")
        return self


class DispatchPaused(Event):
    """Sending stopped after too many SMTP errors (or the account's daily cap); a person resumes it over HTTP."""

    type: Literal["dispatch.paused"] = "dispatch.paused"
    dispatch_id: Id
    mailing_id: Id | None = Field(default=None, description="The mailing sent; none for a plain e-mail.")
    segment_id: Id | None = Field(default=None, description="The segment a plain e-mail went to (emails.requested).")
    reason: str
    errors: int
    sent: int
    failed: int
    queued: int | None = Field(
        default=None,
        ge=0,
        description="Documents left without an outcome at the pause: what resuming sends (a send already "
        "at the server when it paused ends with its outcome).",
    )
    requested_by: Requester | None = Field(
        default=None, description="Who started the dispatch, as its request named them: they are told by e-mail."
    )


class DispatchResumed(Event):
    """A paused dispatch goes on: dispatch asks again for every send still pending."""

    type: Literal["dispatch.resumed"] = "dispatch.resumed"
    dispatch_id: Id
    mailing_id: Id | None = Field(default=None, description="The mailing sent; none for a plain e-mail.")
    segment_id: Id | None = Field(default=None, description="The segment a plain e-mail went to (emails.requested).")
    resumption: int = Field(ge=1, description="How many times this dispatch was resumed, this one included.")


class SendRequested(Event):
    """dispatch's own work item: send one document of a dispatch (any replica takes it)."""

    type: Literal["send.requested"] = "send.requested"
    dispatch_id: Id
    document_id: Id = Field(description="The document; for a plain e-mail, the recipient's customer number.")


# "uncertain": the server took the message but never confirmed it; it may have been delivered.
DeliveryOutcome = Literal["sent", "failed", "uncertain"]


class DeliveryRecorded(Event):
    """One document's final e-mail outcome, with its recipients and the SMTP server's message id or refusal."""

    type: Literal["delivery.recorded"] = "delivery.recorded"
    dispatch_id: Id
    document_id: Id = Field(description="The document; for a plain e-mail, the recipient's customer number.")
    outcome: DeliveryOutcome
    recipients: list[str] = Field(default_factory=list)
    reason: str | None = None
    smtp_message_id: str | None = None


class Failure(_Part):
    document_id: Id = Field(description="The document; for a plain e-mail, the recipient's customer number.")
    reason: str
    kind: Literal["address"] | None = Field(
        default=None,
        description="address: the address was refused (5xx on RCPT), invalid or missing; a re-send asks the "
        "directory first.",
    )


class DispatchCompleted(Event):
    """Every document of the dispatch has a final outcome.

    `failures` lists at most `FAILURES_LISTED`; past that, `failures_file_id` names them all: a Failure a
    line (NDJSON) in GridFS, the tenant's.
    """

    FAILURES_LISTED: ClassVar[int] = 1000

    type: Literal["dispatch.completed"] = "dispatch.completed"
    dispatch_id: Id
    mailing_id: Id | None = Field(default=None, description="The mailing sent; none for a plain e-mail.")
    segment_id: Id | None = Field(default=None, description="The segment a plain e-mail went to (emails.requested).")
    sent: int
    failed: int  # not sent, the uncertain ones included
    failures: list[Failure]
    failures_truncated: bool = False
    failures_file_id: Id | None = None
    uncertain: int = 0  # of `failed`: the server took the message without confirming it (maybe delivered)
    regroup: bool = Field(
        default=True, description="As the request said: whether merge regroups the mailing (false for a plain e-mail)."
    )
    requested_by: Requester | None = Field(
        default=None, description="Who started the dispatch, as its request named them: they are told by e-mail."
    )


class DispatchRefused(Event):
    """The dispatch cannot go and sent nothing (an unknown or unsendable mailing, an account not shared with
    whoever asked...); `reason` says why. Whoever asked (a campaign's occurrence) shows it."""

    type: Literal["dispatch.refused"] = "dispatch.refused"
    dispatch_id: Id
    mailing_id: Id | None = Field(default=None, description="The mailing sent; none for a plain e-mail.")
    segment_id: Id | None = Field(default=None, description="The segment a plain e-mail went to (emails.requested).")
    reason: str


class DocumentSent(Event):
    """Lets the owning system mark, say, an invoice as sent."""

    type: Literal["document.sent"] = "document.sent"
    dispatch_id: Id
    mailing_id: Id
    document_id: Id
    document_number: str | None
    recipients: list[str]


# --- scheduler ------------------------------------------------------------------


class CampaignFired(Event):
    """A campaign's occurrence came due and its dispatch was asked for."""

    type: Literal["campaign.fired"] = "campaign.fired"
    campaign_id: Id
    occurrence_at: datetime
    dispatch_id: Id


# Request/reply pairs: the consumer of the request answers to the requester's reply queue.
REPLIES: dict[type[Event], type[Event]] = {ResolveRecipients: RecipientsResolved}

ALL_EVENTS: tuple[type[Event], ...] = (
    TemplateRegistered,
    MergeRequested,
    MergeRejected,
    DocumentSideEffect,
    RenderRequested,
    DocumentsRendered,
    MergeCompleted,
    MailingRegrouped,
    ResolveRecipients,
    RecipientsResolved,
    DispatchRequested,
    EmailsRequested,
    SendRequested,
    DispatchPaused,
    DispatchResumed,
    DeliveryRecorded,
    DispatchCompleted,
    DispatchRefused,
    DocumentSent,
    CampaignFired,
)
