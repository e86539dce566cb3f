"""An invoice or credit note template's records as e-invoices: each record checked before anything is rendered
(every missing field and every total that does not add up, with its record index, refuses the request as a
missing custom field does), then its CII (Factur-X, the tenant's profile) and UBL 2.1 XML stored beside the
document, where render-pdf and dispatch find them (publipost_einvoice.blobs)."""

from dataclasses import dataclass
from typing import Any, Literal

from publipost_contracts.events import Problem
from publipost_einvoice import (
    INVOICE_ENTITY_TYPES,
    Invoice,
    InvoiceRefused,
    Profile,
    build_cii,
    build_ubl,
    read_invoice,
)
from publipost_einvoice.blobs import cii_blob_id, ubl_blob_id
from publipost_storage import NewBlob

from .clients import TemplateRef


def format_problem(requested: str, template: TemplateRef, output: str) -> Problem | None:
    """Factur-X and UBL are for invoice templates whose documents are PDFs."""
    if requested == "pdf":
        return None
    if template.entity_type not in INVOICE_ENTITY_TYPES:
        message = (
            f"{requested} is for invoice or credit note templates; this one is of entity type {template.entity_type!r}"
        )
        return Problem(field="format", message=message)
    if output != "pdf":
        return Problem(field="format", message=f"{requested} needs PDF documents; this mailing asks for {output}")
    return None


@dataclass(frozen=True)
class EInvoicing:
    """What a mailing of an invoice template makes of each record besides its document."""

    profile: Profile
    kind: Literal["invoice", "credit_note"]
    mapping: dict[str, str]

    @classmethod
    def of(cls, template: TemplateRef, output: str, facturx_profile: str) -> "EInvoicing | None":
        if template.entity_type not in INVOICE_ENTITY_TYPES or output != "pdf":
            return None
        kind: Literal["invoice", "credit_note"] = "credit_note" if template.entity_type == "credit_note" else "invoice"
        return cls(Profile(facturx_profile), kind, dict(template.invoice_mapping))

    def problems(self, index: int, record: dict[str, Any]) -> list[Problem]:
        try:
            self._invoice(record)
        except InvoiceRefused as refused:
            return [Problem(field=p.field, message=p.message, record_index=index) for p in refused.problems]
        return []

    def files(self, record: dict[str, Any], docx_blob_id: str, number: str, metadata: dict[str, Any]) -> list[NewBlob]:
        """The record's CII and UBL XML (checked against their XSDs when built)."""
        invoice = self._invoice(record)
        xml = {"content_type": "application/xml", **metadata}
        return [
            NewBlob(cii_blob_id(docx_blob_id), build_cii(invoice, self.profile), f"{number}.factur-x.xml", xml),
            NewBlob(ubl_blob_id(docx_blob_id), build_ubl(invoice), f"{number}.xml", xml),
        ]

    def _invoice(self, record: dict[str, Any]) -> Invoice:
        return read_invoice(record, mapping=self.mapping, profile=self.profile, kind=self.kind)
