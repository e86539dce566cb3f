"""Structured e-invoices from real invoice records: refused when the totals do not add up (naming the record and
the field), and, when they do, CII and UBL whose totals and VAT breakdown are the record's, valid against the
official XSDs, and a Factur-X PDF that reads back to the same XML."""

import copy
import io
from decimal import Decimal

import pytest
from lxml import etree
from publipost_einvoice import (
    FACTURX_FILENAME,
    InvoiceRefused,
    Profile,
    build_cii,
    build_ubl,
    check_mapping,
    embed_facturx,
    inspect_facturx,
    read_invoice,
    read_invoices,
    xml_from_facturx,
)
from publipost_einvoice.cii import check_cii
from publipost_einvoice.ubl import check_ubl
from pypdf import PdfWriter

SELLER = {
    "name": "Cabinet Durand",
    "vat_id": "FR32123456789",
    "legal_id": "123456789",
    "address": "1 place Bellecour",
    "postal_code": "69002",
    "city": "Lyon",
    "country": "FR",
}
# Three lines at two VAT rates: 380.00 at 20 % (76.00) and 37.50 at 5.5 % (2.0625 → 2.06).
INVOICE = {
    "invoice_number": "INV-123",
    "date": "2026-11-02",
    "due_date": "2026-12-02",
    "name": "Garage Martin",
    "address": "3 rue des Lilas",
    "postal_code": "69003",
    "city": "Lyon",
    "country": "FR",
    "email": "compta@garage-martin.fr",
    "customer_number": "C-42",
    "iban": "FR7630006000011234567890189",
    "seller": SELLER,
    "lines": [
        {"description": "Audit annuel", "quantity": 2, "unit_price": 150, "amount": 300, "vat_rate": 20},
        {"description": "Guide fiscal", "quantity": 3, "unit_price": "12.50", "amount": 37.5, "vat_rate": 5.5},
        {"description": "Conseil", "quantity": 1, "unit_price": 80, "amount": 80, "vat_rate": 20},
    ],
    "amount": 417.5,
    "tax": 78.06,
    "amount_due": 495.56,
}
CII = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
}
UBL = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}


def _record(**changes):
    record = copy.deepcopy(INVOICE)
    record.update(changes)
    return record


def _refusal(records, **options) -> list[str]:
    with pytest.raises(InvoiceRefused) as refused:
        read_invoices(records, **options)
    return [str(problem) for problem in refused.value.problems]


def test_totals_that_do_not_add_up_are_refused_naming_the_record_and_the_field():
    wrong_line = _record()
    wrong_line["lines"][1]["amount"] = 36
    problems = _refusal([INVOICE, _record(tax=80), wrong_line])

    assert "record 1: tax: is 80.00 but the VAT per rate is 78.06" in problems
    assert "record 2: lines[1].amount: is 36.00 but quantity × unit price is 3 × 12.50 = 37.50" in problems
    assert all(not problem.startswith("record 0") for problem in problems)


def test_a_due_amount_that_is_not_the_total_with_vat_is_refused():
    assert _refusal([_record(amount_due=500)]) == ["record 0: amount_due: is 500.00 but the amount with VAT is 495.56"]


def test_a_vat_breakdown_given_by_the_record_is_checked_rate_by_rate():
    record = _record(
        vat_breakdown=[{"rate": 20, "taxable_amount": 380, "tax_amount": 76}, {"rate": 5.5, "tax_amount": 2.07}]
    )
    assert _refusal([record]) == ["record 0: vat_breakdown[1].tax_amount: is 2.07 but the lines at 5.50% give 2.06"]


def test_each_field_the_profile_requires_is_listed_with_its_record_index():
    no_seller_vat = _record(seller={**SELLER, "vat_id": None})
    no_buyer_city = _record(city="")
    problems = _refusal([no_seller_vat, no_buyer_city], profile=Profile.EN16931)

    assert problems == [
        "record 0: seller.vat_id: missing (seller.vat_id, required by the EN 16931 profile)",
        "record 1: city: missing (buyer.city, required by the EN 16931 profile)",
    ]
    # MINIMUM does not ask for the buyer's address.
    assert read_invoices([no_buyer_city], profile=Profile.MINIMUM)[0].buyer.city is None


def test_a_template_mapping_points_invoice_fields_at_other_record_keys():
    record = _record(facture={"numero": "F-2026-7"})
    invoice = read_invoice(record, mapping={"number": "facture.numero"})
    assert invoice.number == "F-2026-7"

    with pytest.raises(ValueError, match="unknown invoice field 'numero'"):
        check_mapping({"numero": "invoice_number"})


@pytest.mark.parametrize("profile", list(Profile))
def test_the_cii_of_each_profile_is_valid_against_the_factur_x_xsd(profile):
    check_cii(build_cii(read_invoice(INVOICE, profile=profile), profile), profile)


def test_three_lines_at_two_vat_rates_give_a_cii_whose_totals_and_vat_breakdown_are_the_records():
    xml = etree.fromstring(build_cii(read_invoice(INVOICE), Profile.EN16931))

    def amounts(path):
        return [Decimal(text) for text in xml.xpath(path, namespaces=CII)]

    settlement = "//ram:ApplicableHeaderTradeSettlement"
    assert len(xml.xpath("//ram:IncludedSupplyChainTradeLineItem", namespaces=CII)) == 3
    assert amounts(f"{settlement}/ram:ApplicableTradeTax/ram:RateApplicablePercent/text()") == [Decimal("5.5"), 20]
    assert amounts(f"{settlement}/ram:ApplicableTradeTax/ram:BasisAmount/text()") == [Decimal("37.5"), 380]
    assert amounts(f"{settlement}/ram:ApplicableTradeTax/ram:CalculatedAmount/text()") == [Decimal("2.06"), 76]
    summation = f"{settlement}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    assert amounts(f"{summation}/ram:TaxBasisTotalAmount/text()") == [Decimal("417.50")]
    assert amounts(f"{summation}/ram:TaxTotalAmount/text()") == [Decimal("78.06")]
    assert amounts(f"{summation}/ram:GrandTotalAmount/text()") == [Decimal("495.56")]
    assert amounts(f"{summation}/ram:DuePayableAmount/text()") == [Decimal("495.56")]


def test_three_lines_at_two_vat_rates_give_a_ubl_invoice_whose_totals_and_vat_breakdown_are_the_records():
    raw = build_ubl(read_invoice(INVOICE))
    check_ubl(raw, "invoice")
    xml = etree.fromstring(raw)

    def amounts(path):
        return [Decimal(text) for text in xml.xpath(path, namespaces=UBL)]

    assert xml.tag == "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice"
    assert xml.findtext("cbc:ID", namespaces=UBL) == "INV-123"
    assert len(xml.xpath("cac:InvoiceLine", namespaces=UBL)) == 3
    assert amounts("cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:Percent/text()") == [Decimal("5.5"), 20]
    assert amounts("cac:TaxTotal/cac:TaxSubtotal/cbc:TaxableAmount/text()") == [Decimal("37.5"), 380]
    assert amounts("cac:TaxTotal/cac:TaxSubtotal/cbc:TaxAmount/text()") == [Decimal("2.06"), 76]
    assert amounts("cac:TaxTotal/cbc:TaxAmount/text()") == [Decimal("78.06")]
    assert amounts("cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount/text()") == [Decimal("417.50")]
    assert amounts("cac:LegalMonetaryTotal/cbc:PayableAmount/text()") == [Decimal("495.56")]


def test_a_credit_note_is_a_ubl_credit_note_and_a_cii_of_type_381():
    invoice = read_invoice(INVOICE, kind="credit_note")
    ubl = build_ubl(invoice)
    check_ubl(ubl, "credit_note")
    assert etree.fromstring(ubl).tag.endswith("}CreditNote")
    cii = etree.fromstring(build_cii(invoice, Profile.EN16931))
    assert cii.xpath("//rsm:ExchangedDocument/ram:TypeCode/text()", namespaces=CII) == ["381"]


def _plain_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_factur_x_pdf_reads_back_to_the_same_xml_and_shows_its_parts_to_an_independent_reader():
    cii = build_cii(read_invoice(INVOICE), Profile.EN16931)
    pdf = embed_facturx(_plain_pdf(), cii, Profile.EN16931)

    assert xml_from_facturx(pdf) == cii
    seen = inspect_facturx(pdf)
    assert seen.embedded_names == [FACTURX_FILENAME]
    assert seen.embedded_xml == cii
    assert seen.af_relationships == {FACTURX_FILENAME: "/Data"}
    assert seen.conformance_level == "EN 16931"
    assert "pdfaid:part" in seen.xmp
