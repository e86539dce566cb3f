"""The invoice as EN 16931 sees it, whatever record it came from: parties, lines, VAT breakdown and totals.

Amounts are Decimal rounded to cents, so a total is compared to the cent and never through a float."""

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

CENT = Decimal("0.01")
# The entity types whose records are invoices (a template's entity_type): they may go as e-invoices.
INVOICE_ENTITY_TYPES = ("invoice", "credit_note")


def cents(amount: Decimal) -> Decimal:
    """Rounded half up to the cent, as EN 16931 (BR-DEC-*) and French invoices round."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


class Profile(StrEnum):
    """The Factur-X profiles a tenant may issue; the value is the factur-x library's level name."""

    MINIMUM = "minimum"
    BASIC_WL = "basicwl"
    BASIC = "basic"
    EN16931 = "en16931"

    @property
    def label(self) -> str:
        return {"minimum": "MINIMUM", "basicwl": "BASIC WL", "basic": "BASIC", "en16931": "EN 16931"}[self.value]

    @property
    def carries_lines(self) -> bool:
        """MINIMUM and BASIC WL carry the totals (and BASIC WL the VAT breakdown), not the lines."""
        return self in (Profile.BASIC, Profile.EN16931)


class Party(BaseModel):
    name: str
    vat_id: str | None = None
    legal_id: str | None = Field(default=None, description="SIREN/SIRET or other registration number.")
    street: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2 code (FR).")
    email: str | None = None


class Line(BaseModel):
    line_id: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    net_amount: Decimal
    vat_rate: Decimal
    vat_category: str = "S"
    unit_code: str = "C62"


class VatBreakdown(BaseModel):
    """One VAT rate of the invoice: the sum of its lines' net amounts and the VAT on it."""

    category: str
    rate: Decimal
    taxable_amount: Decimal
    tax_amount: Decimal


class Totals(BaseModel):
    line_total: Decimal
    tax_exclusive: Decimal
    tax_total: Decimal
    tax_inclusive: Decimal
    due_payable: Decimal


class Invoice(BaseModel):
    kind: Literal["invoice", "credit_note"] = "invoice"
    number: str
    issue_date: date
    due_date: date | None = None
    payment_terms: str | None = None
    currency: str = "EUR"
    buyer_reference: str | None = None
    iban: str | None = None
    seller: Party
    buyer: Party
    lines: list[Line] = []
    vat_breakdown: list[VatBreakdown]
    totals: Totals

    @property
    def type_code(self) -> str:
        """UNTDID 1001: 380 commercial invoice, 381 credit note."""
        return "381" if self.kind == "credit_note" else "380"
