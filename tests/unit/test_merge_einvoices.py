"""merge's side of e-invoices: which mailings make them, the format a mailing may ask for, and the refusal of
an invoice record naming its index and the record key."""

from publipost_einvoice import Profile
from publipost_merge.clients import TemplateRef
from publipost_merge.einvoices import EInvoicing, format_problem

from tests.unit.test_einvoice import INVOICE


def template(entity_type: str, mapping: dict[str, str] | None = None) -> TemplateRef:
    return TemplateRef("t1", "Invoice", 1, "blob-1", ["name"], [], "standard", True, False, entity_type, mapping or {})


def test_factur_x_and_ubl_are_for_invoice_templates_rendered_to_pdf():
    assert format_problem("facturx", template("invoice"), "pdf") is None
    assert format_problem("pdf", template("client"), "pdf") is None
    refused = format_problem("ubl", template("client"), "pdf")
    assert (refused.field, refused.message) == (
        "format",
        "ubl is for invoice or credit note templates; this one is of entity type 'client'",
    )
    assert format_problem("facturx", template("invoice"), "docx").message == (
        "facturx needs PDF documents; this mailing asks for docx"
    )


def test_an_invoice_templates_pdf_mailing_makes_e_invoices_at_the_tenants_profile():
    made = EInvoicing.of(template("credit_note"), "pdf", "basicwl")
    assert (made.profile, made.kind) == (Profile.BASIC_WL, "credit_note")
    assert EInvoicing.of(template("invoice"), "docx", "basic") is None
    assert EInvoicing.of(template("client"), "pdf", "basic") is None


def test_an_invoice_record_is_refused_with_its_index_and_the_key_its_template_maps():
    mapped = EInvoicing.of(template("invoice", {"number": "facture.numero"}), "pdf", "en16931")
    problems = mapped.problems(4, INVOICE)
    assert [(p.record_index, p.field, p.message) for p in problems] == [
        (4, "facture.numero", "missing (number, required by the EN 16931 profile)")
    ]
    assert mapped.problems(0, {**INVOICE, "facture": {"numero": "F-1"}}) == []
