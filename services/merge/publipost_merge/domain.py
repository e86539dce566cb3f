"""Mailing rules, free of I/O: identities, validation, what a record renders with, regrouping names."""

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from publipost_addresses import control_character
from publipost_contracts import Problem, deterministic_id
from publipost_refusals import Conflict

T = TypeVar("T")


class MailingStatus(StrEnum):
    RENDERING = "rendering"  # DOCX being produced, record by record
    CONVERTING = "converting"  # waiting for render-pdf
    READY = "ready"
    PENDING_VALIDATION = "pending_validation"
    FAILED = "failed"  # no document could be produced
    REJECTED = "rejected"  # refused at validation: documents kept for inspection, never sent
    REPLACED = "replaced"  # regrouped into sent / not-sent mailings after a dispatch


class DocumentStatus(StrEnum):
    RENDERED = "rendered"  # DOCX stored; PDF pending when asked for
    CONVERTED = "converted"  # final form stored: the PDF, or the DOCX when no PDF was asked for
    FAILED = "failed"


SENT_SUFFIX = " (sent by e-mail)"
NOT_SENT_SUFFIX = " (not sent by e-mail)"


def mailing_id_for(tenant_id: str, request_id: str) -> str:
    """The request id is the idempotency key: the same request always names the same mailing."""
    return str(deterministic_id("mailing", tenant_id, request_id))


def document_id_for(mailing_id: str, index: int) -> str:
    return str(deterministic_id("document", mailing_id, index))


def regrouped_mailing_id(source_mailing_id: str, dispatch_id: str, outcome: str) -> str:
    return str(deterministic_id("regrouped", source_mailing_id, dispatch_id, outcome))


class MailingConflict(Conflict):
    """The change asked for does not fit the mailing's state."""


def missing_custom_fields(declared: Iterable[str], given: dict[str, str]) -> list[str]:
    """The template's custom fields the request gives no value for (an empty value counts as none)."""
    return [name for name in declared if not str(given.get(name, "")).strip()]


# Fields every rendering has without the record giving them.
PROVIDED_FIELDS = frozenset({"date"})


def fields_records_need(template_fields: Iterable[str], custom_fields: Iterable[str]) -> frozenset[str]:
    """The template's fields that each record must carry itself."""
    return frozenset(template_fields) - frozenset(custom_fields) - PROVIDED_FIELDS


def missing_record_fields(record: dict[str, Any], needed: frozenset[str]) -> list[str]:
    return sorted(name for name in needed if name not in record)


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


def effective_output(requested: str, auto_pdf: bool) -> str:
    """A template without automatic PDF conversion keeps its documents as DOCX, whatever was asked."""
    return "pdf" if requested == "pdf" and auto_pdf else "docx"


def completed_status(documents: int, failed: int, validation_required: bool) -> MailingStatus:
    if failed >= documents:
        return MailingStatus.FAILED
    return MailingStatus.PENDING_VALIDATION if validation_required else MailingStatus.READY


def validated_status(current: str, approve: bool) -> MailingStatus:
    """Approve or reject a mailing waiting for validation; anything else is a conflict."""
    if current != MailingStatus.PENDING_VALIDATION:
        raise MailingConflict(f"the mailing is {current}; only a mailing pending validation can be approved or rejected")
    return MailingStatus.READY if approve else MailingStatus.REJECTED


def new_mailing(
    *,
    mailing_id: str,
    tenant_id: str,
    request_id: str,
    correlation_id: str,
    name: str,
    base_name: str,
    template: dict[str, Any],
    output: str,
    status: MailingStatus,
    expected: int = 0,
    validation_required: bool = False,
    side_effects_published: bool = False,
    warnings: list[dict[str, Any]] | None = None,
    warnings_count: int = 0,
    regrouped_from: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The one way a mailing record is made: a requested one (rendering) or a regrouped one (ready).
    `template` holds template_id, template_version and template_type."""
    now = datetime.now(UTC)
    return {
        "_id": mailing_id,
        "tenant_id": tenant_id,
        "request_id": request_id,
        "correlation_id": correlation_id,
        "name": name,
        "base_name": base_name,
        **template,
        "validation_required": validation_required,
        "output": output,
        "side_effects_published": side_effects_published,
        "status": status,
        "expected": expected,
        "documents": 0,
        "rendered": 0,
        "failed": 0,
        "parts": [],
        "warnings": warnings or [],
        "warnings_count": warnings_count,
        "regrouped_from": regrouped_from,
        "created_at": now,
        "progress_at": now,  # a rendered chunk or a chunk of PDFs moves it; see sweeper.py
    }


def default_name(template_name: str, requested_on: date) -> str:
    return f"{template_name} {requested_on.isoformat()}"


def header_text_problem(field: str, text: str, record_index: int | None = None) -> Problem | None:
    """A mailing's name and a document's number end up in e-mail headers (subject, attachment name) and in the
    download's file name: a control character in them is refused here, where it comes in, naming the field."""
    character = control_character(text)
    if character is None:
        return None
    message = f"{text[:60]!r} contains the control character {character}; it would go into e-mail headers and file names"
    return Problem(field=field, message=message, record_index=record_index)


def record_header_problem(index: int, record: dict[str, Any]) -> Problem | None:
    """The document number (the record's id when it has none), as document_summary reads it."""
    number = record.get("document_number")
    if number is None:
        return header_text_problem("records[].id", str(record.get("id", "")), index)
    return header_text_problem("records[].document_number", str(number), index)


def render_context(record: dict[str, Any], custom_fields: dict[str, str], today: date) -> dict[str, Any]:
    """Custom fields first, then the record's own data; `date` defaults to the day of rendering."""
    return {"date": today.strftime("%d/%m/%Y"), **custom_fields, **record}


def document_summary(index: int, record: dict[str, Any]) -> dict[str, Any]:
    """What dispatch and people need to know of a document without opening it."""
    record_id = str(record["id"])
    number = record.get("document_number")
    return {
        "index": index,
        "record_id": record_id,
        "customer_number": str(record["customer_number"]) if record.get("customer_number") is not None else None,
        "email": record.get("email") or None,
        "document_number": str(number) if number is not None else record_id,
        "recipient_name": record.get("name"),
    }


def regrouped_names(base_name: str) -> tuple[str, str]:
    return base_name + SENT_SUFFIX, base_name + NOT_SENT_SUFFIX


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
