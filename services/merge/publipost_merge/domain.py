"""Merge's model, free of I/O: the mailing and its documents with their state moves as methods, the print
file's plan, identities. What a request must hold before rendering is in request_checks.py."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, Literal, TypeVar

from publipost_contracts import Problem, deterministic_id
from publipost_refusals import Conflict, Gone, NotFound
from publipost_storage import derived_blob_id

T = TypeVar("T")


class MailingStatus(StrEnum):
    RENDERING = "rendering"  # DOCX being produced, record by record
    CONVERTING = "converting"  # waiting for render-pdf: the PDFs, or a DOCX mailing's page counts
    READY = "ready"
    PENDING_VALIDATION = "pending_validation"
    FAILED = "failed"  # no document could be produced
    REJECTED = "rejected"  # refused at validation: documents kept for inspection, never sent
    REPLACED = "replaced"  # regrouped into sent / not-sent mailings after a dispatch


class DocumentStatus(StrEnum):
    RENDERED = "rendered"  # DOCX stored; its PDF (or, with no PDF asked for, its page count) pending
    CONVERTED = "converted"  # final: its PDF stored, or its DOCX counted when no PDF was asked for
    FAILED = "failed"


class EmailState(StrEnum):
    """Where a document stands with e-mail: dispatch's events move it (see regrouping.document_sent)."""

    NEVER_SENT = "never_sent"
    SENT = "sent"
    NOT_SENT = "not_sent"


# The regrouped mailings' names, in the tenant's language (TenantSettings.language).
SUFFIXES: dict[str, dict[str, str]] = {
    "en": {"sent": " (sent by e-mail)", "not_sent": " (not sent by e-mail)"},
    "fr": {"sent": " (envoyé par email)", "not_sent": " (non envoyé par email)"},
}
Language = Literal["en", "fr"]


def mailing_id_for(tenant_id: str, request_id: str) -> str:
    """The request id is the idempotency key: the same request always names the same mailing."""
    return str(deterministic_id("mailing", tenant_id, request_id))


def document_id_for(mailing_id: str, index: int) -> str:
    return str(deterministic_id("document", mailing_id, index))


def regrouped_mailing_id(source_mailing_id: str, dispatch_id: str, outcome: str) -> str:
    return str(deterministic_id("regrouped", source_mailing_id, dispatch_id, outcome))


class MailingConflict(Conflict):
    """The change asked for does not fit the mailing's state."""


class PartSplitter(Generic[T]):
    """Groups documents, in order, into parts of at most `page_limit` pages, fed one document at a
    time (a mailing's documents are streamed). A document is never cut: one longer than the limit
    makes a part of its own."""

    def __init__(self, page_limit: int) -> None:
        self.page_limit = page_limit
        self._part: list[T] = []
        self._pages = 0

    def add(self, document: T, pages: int) -> list[T] | None:
        """The part completed by this document not fitting in it, if any."""
        done = None
        if self._part and self._pages + pages > self.page_limit:
            done, self._part, self._pages = self._part, [], 0
        self._part.append(document)
        self._pages += pages
        return done

    def finish(self) -> list[T] | None:
        done, self._part, self._pages = self._part or None, [], 0
        return done


async def chunked(items: AsyncIterator[T], size: int) -> AsyncIterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter), read as they come."""
    chunk: list[T] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Outcome(StrEnum):
    """Which of a dispatched mailing's documents a regrouped mailing holds."""

    SENT = "sent"
    NOT_SENT = "not_sent"


class MailingNotFound(NotFound):
    """No such mailing for this tenant."""


class MailingRefused(Gone):
    """A mailing started over HTTP that merge refused: it will never exist (and the answer says why)."""


class PartNotFound(NotFound):
    """A print file part the mailing does not have."""


@dataclass(kw_only=True)
class PrintPart:
    """One file of a mailing's print file: whole documents one after the other, up to the page limit.

    Planned when the mailing settles, from the documents' page counts; its file is built at its first
    download, under a blob id fixed by the mailing and the part, so concurrent first downloads write the
    same blob and a mailing e-mailed whole never pays for a print file nobody reads."""

    number: int
    blob_id: str
    documents: int
    pages: int
    # The converted documents it holds, by record index. None in the parts of mailings settled before
    # parts were built on download: those were built when the mailing settled.
    first_index: int | None = None
    last_index: int | None = None

    @property
    def built_on_download(self) -> bool:
        return self.first_index is not None


def print_part_blob_id(mailing_id: str, number: int) -> str:
    return derived_blob_id("print-file", mailing_id, str(number))


class PrintFilePlan:
    """The parts of a mailing's print file, planned from its converted documents fed in record order
    (streamed: a mailing has up to 100,000 documents)."""

    def __init__(self, mailing_id: str, page_limit: int) -> None:
        self._mailing_id = mailing_id
        self._splitter: PartSplitter[tuple[int, int]] = PartSplitter(page_limit)
        self.parts: list[PrintPart] = []

    def add(self, index: int, pages: int) -> None:
        if (done := self._splitter.add((index, pages), pages)) is not None:
            self._plan(done)

    def finish(self) -> list[PrintPart]:
        if (done := self._splitter.finish()) is not None:
            self._plan(done)
        return self.parts

    def _plan(self, documents: list[tuple[int, int]]) -> None:
        number = len(self.parts) + 1
        self.parts.append(
            PrintPart(
                number=number,
                blob_id=print_part_blob_id(self._mailing_id, number),
                documents=len(documents),
                pages=sum(pages for _, pages in documents),
                first_index=documents[0][0],
                last_index=documents[-1][0],
            )
        )


@dataclass(kw_only=True)
class RegroupedFrom:
    mailing_id: str
    dispatch_id: str
    outcome: Outcome


@dataclass(kw_only=True)
class MailingContents:
    """What a settled mailing holds, counted from its documents."""

    documents: int
    failed: int
    parts: list[PrintPart]
    documents_file_id: str
    converted_by: dict[str, int] = field(default_factory=dict)  # PDFs per render-pdf converter

    FIELDS: ClassVar[tuple[str, ...]] = ("documents", "failed", "converted_by", "parts", "documents_file_id")


@dataclass(kw_only=True)
class Mailing:
    """The documents of one merge request (or of one outcome of its dispatch), and where they stand.

    Fields added after the first version have defaults, so mailings stored by older versions load."""

    id: str
    tenant_id: str
    request_id: str
    correlation_id: str
    name: str
    base_name: str  # the name the regrouped mailings' names are made from, kept through renames
    template_id: str | None = None
    template_version: int | None = None
    template_type: str = "standard"
    validation_required: bool = False
    output: str
    side_effects_published: bool = False
    status: MailingStatus
    expected: int = 0
    documents: int = 0
    rendered: int = 0
    failed: int = 0
    parts: list[PrintPart] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    warnings_count: int = 0
    regrouped_from: RegroupedFrom | None = None
    created_at: datetime
    progress_at: datetime | None = None  # a rendered chunk or a chunk of PDFs moves it; see sweeper.py
    resumptions: int = 0
    documents_file_id: str | None = None
    validated_at: datetime | None = None
    validation_reason: str | None = None
    replaced_by: list[str] | None = None
    converted_by: dict[str, int] = field(default_factory=dict)  # PDFs per render-pdf backend
    # A not-sent mailing: the "(sent by e-mail)" mailing of its original, which the documents a re-send of it
    # sends join (one per original, updated), rather than a new mailing of the same name each time.
    sent_mailing_id: str | None = None
    # An invoice template's mailing: how its documents go by e-mail (pdf, facturx, ubl) unless the directory
    # says otherwise, and the Factur-X profile its documents were made at (None: no e-invoice files).
    format: str = "pdf"
    facturx_level: str | None = None

    @classmethod
    def requested(
        cls,
        *,
        tenant_id: str,
        request_id: str,
        correlation_id: str,
        name: str,
        template_id: str,
        template_version: int,
        template_type: str,
        output: str,
        expected: int,
        validation_required: bool,
        warnings: list[Problem],
        warnings_count: int,
        format: str = "pdf",
        facturx_level: str | None = None,
    ) -> "Mailing":
        """A mailing being rendered, named by its request (see mailing_id_for)."""
        now = datetime.now(UTC)
        return cls(
            id=mailing_id_for(tenant_id, request_id),
            tenant_id=tenant_id,
            request_id=request_id,
            correlation_id=correlation_id,
            name=name,
            base_name=name,
            template_id=template_id,
            template_version=template_version,
            template_type=template_type,
            validation_required=validation_required,
            output=output,
            status=MailingStatus.RENDERING,
            expected=expected,
            warnings=warnings,
            warnings_count=warnings_count,
            created_at=now,
            progress_at=now,
            format=format,
            facturx_level=facturx_level,
        )

    @classmethod
    def regrouped(
        cls,
        source: "Mailing",
        dispatch_id: str,
        outcome: Outcome,
        *,
        sent_mailing_id: str | None = None,
        language: Language = "en",
    ) -> "Mailing":
        """The "sent by e-mail" or "not sent by e-mail" mailing of a dispatched one (named in the tenant's
        `language`): ready at once. A not-sent one names the sent mailing its re-sent documents will join
        (`sent_mailing_id`)."""
        now = datetime.now(UTC)
        suffix = SUFFIXES[language][outcome.value]
        return cls(
            id=regrouped_mailing_id(source.id, dispatch_id, outcome),
            tenant_id=source.tenant_id,
            request_id=f"{source.request_id}/{dispatch_id}/{outcome}",
            correlation_id=source.correlation_id,
            name=source.base_name + suffix,
            base_name=source.base_name,
            template_id=source.template_id,
            template_version=source.template_version,
            template_type=source.template_type,
            output=source.output,
            status=MailingStatus.READY,
            side_effects_published=True,  # the source mailing's documents were announced already
            regrouped_from=RegroupedFrom(mailing_id=source.id, dispatch_id=dispatch_id, outcome=outcome),
            created_at=now,
            progress_at=now,
            sent_mailing_id=sent_mailing_id if outcome is Outcome.NOT_SENT else None,
            format=source.format,
            facturx_level=source.facturx_level,
        )

    def sent_mailing_for(self, dispatch_id: str, joinable: "Mailing | None") -> str:
        """The id of the mailing the documents a dispatch of this one sent go to: the sent mailing of its original
        when `joinable` (that mailing, read) can still take them, else a new "(sent by e-mail)" mailing."""
        if joinable is not None and joinable.id == self.sent_mailing_id and joinable.sendable:
            return joinable.id
        return regrouped_mailing_id(self.id, dispatch_id, Outcome.SENT)

    @property
    def in_progress(self) -> bool:
        return self.status in (MailingStatus.RENDERING, MailingStatus.CONVERTING)

    @property
    def announced(self) -> bool:
        """Settled in a status merge.completed tells."""
        return self.status in (MailingStatus.READY, MailingStatus.PENDING_VALIDATION, MailingStatus.FAILED)

    @property
    def sendable(self) -> bool:
        return self.status == MailingStatus.READY

    @property
    def side_effects_due(self) -> bool:
        """A ready mailing of a non-standard template whose documents were not announced one by one yet."""
        return self.sendable and self.template_type != "standard" and not self.side_effects_published

    def rendering_done(self, documents: int) -> None:
        """Every record is rendered: a PDF mailing waits for its PDFs, a DOCX one for its page counts
        (LibreOffice's: its print file is split by real pages)."""
        self.documents = documents
        self.status = MailingStatus.CONVERTING

    @property
    def pages_only(self) -> bool:
        """A DOCX mailing asks render-pdf only for its documents' page counts."""
        return self.output != "pdf"

    def resume(self) -> int:
        """A stalled conversion is asked for again: the how-many-th time."""
        self.resumptions += 1
        self.progress_at = datetime.now(UTC)
        return self.resumptions

    def complete(self, contents: MailingContents) -> None:
        """No document waits any more: failed when none could be produced, else ready or waiting for validation."""
        if not self.in_progress:
            raise MailingConflict(f"the mailing is {self.status}; only a mailing in progress completes")
        self.hold(contents)
        if contents.failed >= contents.documents:
            self.status = MailingStatus.FAILED
        else:
            self.status = MailingStatus.PENDING_VALIDATION if self.validation_required else MailingStatus.READY

    def hold(self, contents: MailingContents) -> None:
        self.documents = contents.documents
        self.failed = contents.failed
        self.converted_by = contents.converted_by
        self.parts = contents.parts
        self.documents_file_id = contents.documents_file_id

    def validate(self, approve: bool, reason: str | None) -> None:
        """Approve (ready to send) or reject (kept for inspection, never sent) a mailing waiting for validation."""
        if self.status != MailingStatus.PENDING_VALIDATION:
            raise MailingConflict(
                f"the mailing is {self.status}; only a mailing pending validation can be approved or rejected"
            )
        self.status = MailingStatus.READY if approve else MailingStatus.REJECTED
        self.validated_at = datetime.now(UTC)
        self.validation_reason = reason

    def replace(self, by: list[str]) -> None:
        """Regrouped after its dispatch: its documents, print file and documents file now belong to `by` (only
        the mailings that received some)."""
        self.status = MailingStatus.REPLACED
        self.parts = []
        self.documents_file_id = None
        self.replaced_by = by

    def part(self, number: int) -> PrintPart:
        part = next((p for p in self.parts if p.number == number), None)
        if part is None:
            raise PartNotFound(f"mailing {self.id!r} has {len(self.parts)} part(s) (status {self.status})")
        return part


# How a rendering writes the date when the record gives none (request_checks.render_context).
DATE_FORMAT = "%d/%m/%Y"


def record_fields(record: dict[str, Any]) -> dict[str, str]:
    """The record's scalar values as text: what dispatch fills an e-mail's {variables} with, `date` the
    document's (the record's own, else the day the mailing was asked for). A list (an invoice's lines) has no
    place in a subject or a body; an empty value is no value."""
    return {
        name: str(value)
        for name, value in record.items()
        if isinstance(value, str | int | float | bool) and str(value) != ""
    }


@dataclass(kw_only=True)
class Document:
    """One record's document: its DOCX, then (for a PDF mailing) its PDF, or why it failed."""

    id: str
    tenant_id: str
    mailing_id: str
    index: int
    record_id: str
    customer_number: str | None = None
    email: str | None = None
    document_number: str
    recipient_name: str | None = None
    status: DocumentStatus
    docx_blob_id: str | None = None
    pdf_blob_id: str | None = None
    page_count: int = 0
    error: str | None = None
    converted_by: str | None = None  # render-pdf's backend that made the PDF
    email_state: EmailState = EmailState.NEVER_SENT
    sent_at: datetime | None = None
    sent_to: list[str] = field(default_factory=list)
    email_error: str | None = None  # why the last dispatch did not send it

    EMAIL_FIELDS: ClassVar[tuple[str, ...]] = (
        "email_state", "sent_at", "sent_to", "email_error", "last_failure", "last_failure_kind"
    )
    fields: dict[str, str] = field(default_factory=dict)  # what its e-mail may name (record_fields)
    # Why its last e-mailing failed, kept by the regrouping into the not-sent mailing: a re-send of that
    # mailing asks the directory first for a document whose address failed (kind "address").
    last_failure: str | None = None
    last_failure_kind: str | None = None

    @classmethod
    def rendered(cls, mailing: Mailing, index: int, record: dict[str, Any]) -> "Document":
        """Its DOCX is stored under an id fixed by the document: rendering it again after a crash replaces it.
        It waits for its PDF, or for its page count in a DOCX mailing."""
        document = cls._of_record(mailing, index, record, DocumentStatus.RENDERED)
        document.docx_blob_id = derived_blob_id("docx", document.id)
        return document

    @classmethod
    def failed_rendering(cls, mailing: Mailing, index: int, record: dict[str, Any], reason: str) -> "Document":
        document = cls._of_record(mailing, index, record, DocumentStatus.FAILED)
        document.error = reason
        return document

    @classmethod
    def _of_record(cls, mailing: Mailing, index: int, record: dict[str, Any], status: DocumentStatus) -> "Document":
        """With what dispatch and people need to know of it without opening it."""
        record_id = str(record["id"])
        number = record.get("document_number")
        return cls(
            id=document_id_for(mailing.id, index),
            tenant_id=mailing.tenant_id,
            mailing_id=mailing.id,
            index=index,
            record_id=record_id,
            customer_number=str(record["customer_number"]) if record.get("customer_number") is not None else None,
            email=record.get("email") or None,
            document_number=str(number) if number is not None else record_id,
            recipient_name=record.get("name"),
            status=status,
            fields=record_fields({"date": mailing.created_at.strftime(DATE_FORMAT), **record}),
        )

    def converted(self, pdf_blob_id: str | None, page_count: int, converted_by: str | None = None) -> bool:
        """Its PDF is in (or only its page count, for a DOCX mailing). Only a rendered document moves: a copy
        of the answer, or a late answer to a resumed request, leaves the first outcome (which the mailing's
        counts are made of). Whether it moved."""
        if self.status != DocumentStatus.RENDERED:
            return False
        self.status, self.pdf_blob_id, self.page_count = DocumentStatus.CONVERTED, pdf_blob_id, page_count
        self.converted_by = converted_by
        return True

    def sent_by_email(self, at: datetime, recipients: list[str]) -> None:
        """A dispatch sent it: when and to whom. A later send (a re-send) replaces both."""
        self.email_state, self.sent_at, self.sent_to, self.email_error = EmailState.SENT, at, recipients, None

    def not_sent_by_email(self, reason: str, kind: str | None = None) -> None:
        """A dispatch could not send it (or could not confirm it went), for `reason` (of `kind` "address" when
        its address failed: a re-send asks the directory first). Where it was sent to before, if ever, is kept."""
        self.email_state, self.email_error = EmailState.NOT_SENT, reason
        self.last_failure, self.last_failure_kind = reason, kind

    def conversion_failed(self, error: str) -> bool:
        if self.status != DocumentStatus.RENDERED:
            return False
        self.status, self.error = DocumentStatus.FAILED, f"PDF conversion failed: {error}"
        return True


@dataclass(kw_only=True)
class TenantSettings:
    """A tenant's choices for its mailings (its id is the tenant's)."""

    id: str
    combined_page_limit: int | None = None
    language: Language = "en"  # of the names merge gives (the regrouped mailings')
    facturx_profile: str = "en16931"  # the Factur-X profile of its invoices (publipost_einvoice.Profile)

    def page_limit(self, default: int) -> int:
        return self.combined_page_limit or default


@dataclass(kw_only=True)
class MailingRequest:
    """A mailing asked for over HTTP (POST /mailings), from the answer on: its id is the mailing's. It makes a
    second POST with the same request id start nothing, keeps the records file merge made of the upload (its
    own: deleted with the mailing), and says on GET /mailings/{id} why merge refused it, if it did."""

    id: str
    tenant_id: str
    request_id: str
    records_file_id: str | None = None
    requested_at: datetime
    refusal: list[Problem] | None = None

    def not_found(self) -> MailingNotFound | MailingRefused:
        """What GET /mailings/{id} answers while there is no mailing: refused, or not taken by merge yet."""
        if self.refusal is None:
            return MailingNotFound(
                f"mailing {self.id!r} is not started yet: merge has its request and takes it shortly; ask again"
            )
        reasons = "; ".join(f"{problem.field}: {problem.message}" for problem in self.refusal)
        return MailingRefused(f"mailing {self.id!r} will not exist: merge refused its request ({reasons})")
