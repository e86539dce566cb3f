"""Structured e-invoices: an invoice read from a merge record (mapping, profile requirements, totals that add
up), its Factur-X CII XML and UBL 2.1 XML checked against the official XSDs, and the Factur-X PDF."""

from publipost_einvoice.cii import InvalidEInvoice, build_cii
from publipost_einvoice.facturx_pdf import FACTURX_FILENAME, embed_facturx, inspect_facturx, xml_from_facturx
from publipost_einvoice.mapping import (
    DEFAULT_MAPPING,
    INVOICE_FIELDS,
    InvoiceProblem,
    InvoiceRefused,
    check_mapping,
    read_invoice,
    read_invoices,
)
from publipost_einvoice.model import INVOICE_ENTITY_TYPES, Invoice, Profile
from publipost_einvoice.ubl import build_ubl

__all__ = [
    "DEFAULT_MAPPING",
    "FACTURX_FILENAME",
    "INVOICE_ENTITY_TYPES",
    "INVOICE_FIELDS",
    "InvalidEInvoice",
    "Invoice",
    "InvoiceProblem",
    "InvoiceRefused",
    "Profile",
    "build_cii",
    "build_ubl",
    "check_mapping",
    "embed_facturx",
    "inspect_facturx",
    "read_invoice",
    "read_invoices",
    "xml_from_facturx",
]
