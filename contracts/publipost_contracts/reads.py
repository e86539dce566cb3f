"""What one service reads of another over HTTP, typed on both sides: the route answers the model, the caller
parses it (tests/contract/test_reads.py checks the route's OpenAPI schema is the model's). Today: dispatch
reads a mailing from merge; its documents it reads from the mailing's documents file (DocumentView lines); a
plain e-mail's recipients it reads from the recipient directory's segment (RecipientRecord lines).

    from publipost_contracts.reads import MailingView
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class PartView(BaseModel):
    number: int
    documents: int
    pages: int


class MailingView(BaseModel):
    id: str
    name: str
    status: str = Field(description="rendering, converting, pending_validation, ready, failed, rejected, replaced.")
    sendable: bool = Field(
        default=False, description="Whether its documents can be e-mailed now: final, validated, not replaced."
    )
    created_at: datetime
    output: str = Field(description="pdf or docx: only PDF mailings are e-mailed.")
    template_id: str | None = None
    template_version: int | None = None
    expected: int = Field(default=0, description="Records in the request: the total while rendering.")
    documents: int
    rendered: int
    failed: int
    parts: list[PartView] = Field(default_factory=list, description="The print file, in parts (GET .../parts/N).")
    warnings: list[dict[str, Any]] = Field(default_factory=list)
    warnings_count: int = 0
    converted: int | None = Field(default=None, description="PDFs ready so far; in the single-mailing view.")
    regrouped_from: dict[str, str] | None = None
    replaced_by: list[str] | None = None
    documents_file_id: str | None = Field(
        default=None,
        description="Once settled: its documents in GridFS, one DocumentView a line (NDJSON) in record order.",
    )
    converted_by: dict[str, int] = Field(
        default_factory=dict,
        description="PDFs per converter: libreoffice (the tenant's included quota), gotenberg (a paid one past it).",
    )
    validated_at: datetime | None = Field(default=None, description="When it was approved or rejected.")
    validation_reason: str | None = Field(default=None, description="Why it was approved or rejected, as given.")
    format: str = Field(
        default="pdf",
        description="How its documents go by e-mail unless the recipient directory says otherwise: pdf, facturx "
        "(the Factur-X PDF) or ubl (the PDF and a UBL 2.1 XML); facturx and ubl only for invoice templates.",
    )
    einvoices: bool = Field(default=False, description="An invoice template's: each document has its e-invoice files.")


class FailureView(BaseModel):
    reason: str
    kind: Literal["address"] | None = Field(default=None, description="address: its address was refused or missing.")


class DocumentView(BaseModel):
    id: str
    index: int
    record_id: str
    customer_number: str | None
    email: str | None
    document_number: str
    recipient_name: str | None
    status: str
    pdf_blob_id: str | None
    docx_blob_id: str | None
    page_count: int
    error: str | None
    converted_by: str | None = Field(default=None, description="The converter that made its PDF.")
    email_state: str = Field(
        default="never_sent", description="never_sent, sent (see sent_at, sent_to) or not_sent (see email_error)."
    )
    sent_at: datetime | None = Field(default=None, description="When it was last sent by e-mail.")
    sent_to: list[str] = Field(default_factory=list, description="The addresses it was last sent to.")
    email_error: str | None = Field(default=None, description="Why the last dispatch did not send it.")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="The record's scalar values as text, `date` the document's date (the record's, else the day "
        "it was rendered): what an e-mail's subject and body may name.",
    )
    last_failure: FailureView | None = Field(
        default=None, description="Why its last e-mailing failed (a not-sent mailing's documents)."
    )


class DocumentPage(BaseModel):
    items: list[DocumentView]
    next_after: int | None = Field(description="Ask again with after=this for the next page; none: the last.")


class RecipientRecord(BaseModel):
    """One line of the recipient directory's `GET /segments/{id}/recipients`: a recipient shaped as a merge
    record (`id` is the customer number). Its other values (postal_code, family, last_visit_date...) are kept
    as they come: a plain e-mail may name them."""

    model_config = ConfigDict(extra="allow")

    id: str
    customer_number: str
    email: str | None = None
    name: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict, description="Custom attributes, text values.")
