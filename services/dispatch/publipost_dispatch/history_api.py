"""The send history over HTTP: every send, of a dispatch (a plain e-mail's too) or typed by hand, newest first,
50 a page."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from publipost_auth import OutcomeReader
from publipost_http import PageNumber
from pydantic import BaseModel, Field

from .context import Context
from .domain import history_status, history_term, search_terms
from .model import Delivery

router = APIRouter(prefix="/history", tags=["history"])
PER_PAGE = 50


class AttachedDocument(BaseModel):
    document_id: str
    document_number: str
    name: str = ""
    mailing_id: str


class HistoryEntry(BaseModel):
    send_id: str
    kind: Literal["dispatch", "manual"]
    dispatch_id: str
    status: Literal["queued", "sent", "failed", "uncertain"]
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str | None
    at: datetime
    document: AttachedDocument | None = Field(description="None: a plain e-mail, nothing attached.")
    customer_number: str | None = Field(default=None, description="The recipient's, when known.")
    document_type: str | None
    error: str | None
    message_id: str | None
    smtp_reply: str | None
    attempts: int
    address_rule: str | None = Field(
        default=None, description="The directory's rule that gave `to`: record, directory, contact, billing, main."
    )


class HistoryPage(BaseModel):
    items: list[HistoryEntry]
    page: int
    per_page: int
    has_next: bool


def _entry(d: Delivery) -> HistoryEntry:
    return HistoryEntry(
        send_id=d.id,
        kind=d.kind,
        dispatch_id=d.dispatch_id,
        status=history_status(d.state),
        to=d.to,
        cc=d.cc,
        bcc=d.bcc,
        subject=d.subject,
        at=d.finished_at or d.created_at,
        document=None
        if d.is_letter
        else AttachedDocument(
            document_id=d.document_id,
            document_number=d.document_number,
            name=f"{d.document_number}.{d.attached}" if d.pdf_blob_id else "",
            mailing_id=d.mailing_id,
        ),
        customer_number=d.customer_number,
        document_type=d.document_type,
        error=d.reason,
        message_id=d.message_id,
        smtp_reply=d.smtp_reply,
        attempts=d.attempts,
        address_rule=d.address_rule,
    )


@router.get("", response_model=HistoryPage)
async def history(
    ctx: Context,
    caller: OutcomeReader,
    document_type: Annotated[str | None, Query(max_length=64)] = None,
    status: Literal["queued", "sent", "failed", "uncertain"] | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Words of the subject, document name or number.")] = None,
    page: PageNumber = 1,
) -> HistoryPage:
    """Each filter narrows; free text matches whole words, every word given."""
    # Likeliest-rare first: the database is asked for the first, the others checked on what it finds.
    terms = sorted(search_terms(q), key=len, reverse=True) if q else []
    if document_type:
        terms.append(history_term("type", document_type))
    if status:
        terms.append(history_term("status", status))
    found = await ctx.deliveries.history(caller.tenant_id, terms, skip=(page - 1) * PER_PAGE, limit=PER_PAGE + 1)
    return HistoryPage(
        items=[_entry(d) for d in found[:PER_PAGE]], page=page, per_page=PER_PAGE, has_next=len(found) > PER_PAGE
    )


@router.get("/documents/{document_id}", response_model=list[HistoryEntry])
async def document_history(ctx: Context, caller: OutcomeReader, document_id: str) -> list[HistoryEntry]:
    """A document's successive sends, newest first, whichever mailing it was in at the time."""
    return [_entry(d) for d in await ctx.deliveries.sends_of(caller.tenant_id, document_id)]
