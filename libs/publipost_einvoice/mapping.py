"""From a merge record to an Invoice: which record key feeds which invoice field (the template's
`invoice_mapping`), what each profile requires, and whether the record's totals add up.

Every problem of every record is collected, so one refusal tells the sending system all it has to fix."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from publipost_einvoice.model import Invoice, Line, Party, Profile, Totals, VatBreakdown, cents

# Invoice field → record key path (dots go into nested objects). Defaults follow the invoice entity type's
# predefined fields (invoice_number, lines, amount, tax, amount_due, due_date, iban) and a `seller` object.
DEFAULT_MAPPING: dict[str, str] = {
    "number": "invoice_number",
    "issue_date": "date",
    "due_date": "due_date",
    "payment_terms": "payment_terms",
    "currency": "currency",
    "buyer_reference": "customer_number",
    "iban": "iban",
    "seller.name": "seller.name",
    "seller.vat_id": "seller.vat_id",
    "seller.legal_id": "seller.legal_id",
    "seller.street": "seller.address",
    "seller.postal_code": "seller.postal_code",
    "seller.city": "seller.city",
    "seller.country": "seller.country",
    "buyer.name": "name",
    "buyer.vat_id": "vat_number",
    "buyer.legal_id": "legal_id",
    "buyer.street": "address",
    "buyer.postal_code": "postal_code",
    "buyer.city": "city",
    "buyer.country": "country",
    "buyer.email": "email",
    "lines": "lines",
    "line.description": "description",
    "line.quantity": "quantity",
    "line.unit_price": "unit_price",
    "line.net_amount": "amount",
    "line.vat_rate": "vat_rate",
    "line.vat_category": "vat_category",
    "vat_breakdown": "vat_breakdown",
    "tax_exclusive": "amount",
    "tax_total": "tax",
    "tax_inclusive": "total",
    "due_payable": "amount_due",
}
INVOICE_FIELDS = tuple(DEFAULT_MAPPING)

_MINIMUM = (
    "number", "issue_date", "seller.name", "seller.vat_id", "seller.country", "buyer.name",
    "tax_exclusive", "tax_total", "due_payable",
)  # fmt: skip
# BASIC WL adds the VAT breakdown, which is read from the lines, and a due date or payment terms (BR-CO-25).
_BASIC_WL = (*_MINIMUM, "buyer.country", "lines")
_EN16931 = (*_BASIC_WL, "seller.postal_code", "seller.city", "buyer.postal_code", "buyer.city")
REQUIRED: dict[Profile, tuple[str, ...]] = {
    Profile.MINIMUM: _MINIMUM,
    Profile.BASIC_WL: _BASIC_WL,
    Profile.BASIC: _BASIC_WL,
    Profile.EN16931: _EN16931,
}


@dataclass(frozen=True)
class InvoiceProblem:
    """What is wrong with one record: its index in the request, the record key to fix, and why."""

    index: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"record {self.index}: {self.field}: {self.message}"


class InvoiceRefused(ValueError):
    def __init__(self, problems: list[InvoiceProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(problem) for problem in problems))


def check_mapping(mapping: dict[str, Any]) -> dict[str, str]:
    """A template's mapping merged over the defaults; an unknown invoice field or an empty path is refused."""
    problems = [f"unknown invoice field {name!r}" for name in mapping if name not in DEFAULT_MAPPING]
    problems += [
        f"{name}: the record key must be a non-empty string"
        for name, path in mapping.items()
        if name in DEFAULT_MAPPING and (not isinstance(path, str) or not path.strip())
    ]
    if problems:
        raise ValueError("; ".join(problems) + f" (known: {', '.join(INVOICE_FIELDS)})")
    return {**DEFAULT_MAPPING, **mapping}


def read_invoices(
    records: list[dict[str, Any]],
    *,
    mapping: dict[str, str] | None = None,
    profile: Profile = Profile.EN16931,
    kind: Literal["invoice", "credit_note"] = "invoice",
) -> list[Invoice]:
    """One Invoice per record, or InvoiceRefused listing every problem of every record."""
    full_mapping = check_mapping(mapping or {})
    invoices, problems = [], []
    for index, record in enumerate(records):
        reader = _RecordReader(record, index, full_mapping)
        invoice = reader.invoice(profile, kind)
        problems += reader.problems
        invoices.append(invoice)
    if problems:
        raise InvoiceRefused(problems)
    return invoices


def read_invoice(record: dict[str, Any], **options: Any) -> Invoice:
    return read_invoices([record], **options)[0]


_MISSING = object()


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or data.get(part) in (None, ""):
            return _MISSING
        data = data[part]
    return data


class _RecordReader:
    def __init__(self, record: dict[str, Any], index: int, mapping: dict[str, str]) -> None:
        self.record, self.index, self.mapping = record, index, mapping
        self.problems: list[InvoiceProblem] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(InvoiceProblem(self.index, key, message))

    def raw(self, field: str) -> Any:
        return _lookup(self.record, self.mapping[field])

    def text(self, field: str) -> str | None:
        value = self.raw(field)
        return None if value is _MISSING else str(value).strip()

    def amount(self, field: str, value: Any = _MISSING, key: str | None = None) -> Decimal | None:
        value = self.raw(field) if value is _MISSING else value
        if value is _MISSING or value is None:
            return None
        try:
            number = Decimal(str(value).replace(",", ".").replace(" ", ""))
        except InvalidOperation:
            self.problem(key or self.mapping[field], f"{value!r} is not a number")
            return None
        if not number.is_finite():
            self.problem(key or self.mapping[field], f"{value!r} is not a number")
            return None
        return number

    def day(self, field: str) -> date | None:
        value = self.raw(field)
        if value is _MISSING:
            return None
        text = str(value).strip()[:10]
        for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
            try:
                return datetime.strptime(text, pattern).date()
            except ValueError:
                continue
        self.problem(self.mapping[field], f"{value!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)")
        return None

    def country(self, field: str) -> str | None:
        code = self.text(field)
        if code is not None and (len(code) != 2 or not code.isalpha()):
            self.problem(self.mapping[field], f"{code!r} is not an ISO 3166 two-letter country code (FR, BE…)")
            return None
        return code.upper() if code else None

    def party(self, role: str) -> Party:
        return Party(
            name=self.text(f"{role}.name") or "",
            vat_id=self.text(f"{role}.vat_id"),
            legal_id=self.text(f"{role}.legal_id"),
            street=self.text(f"{role}.street"),
            postal_code=self.text(f"{role}.postal_code"),
            city=self.text(f"{role}.city"),
            country=self.country(f"{role}.country"),
            email=self.text(f"{role}.email") if role == "buyer" else None,
        )

    def required(self, profile: Profile) -> None:
        for field in REQUIRED[profile]:
            if self.raw(field) is _MISSING:
                self.problem(self.mapping[field], f"missing ({field}, required by the {profile.label} profile)")
        if (
            profile is not Profile.MINIMUM
            and self.raw("due_date") is _MISSING
            and self.raw("payment_terms") is _MISSING
        ):
            self.problem(
                self.mapping["due_date"],
                f"missing (a due date or payment terms ({self.mapping['payment_terms']}) is required by the "
                f"{profile.label} profile)",
            )

    def lines(self) -> list[Line]:
        raw = self.raw("lines")
        key = self.mapping["lines"]
        if raw is _MISSING:
            return []
        if not isinstance(raw, list) or not all(isinstance(line, dict) for line in raw):
            self.problem(key, "must be a list of lines (objects)")
            return []
        lines = []
        for number, line in enumerate(raw):
            where = f"{key}[{number}]"
            values = {}
            for field in ("quantity", "unit_price", "vat_rate"):
                sub = self.mapping[f"line.{field}"]
                if line.get(sub) in (None, ""):
                    self.problem(f"{where}.{sub}", f"missing (line {field})")
                values[field] = self.amount(f"line.{field}", line.get(sub), f"{where}.{sub}")
            description = line.get(self.mapping["line.description"])
            if description in (None, ""):
                self.problem(f"{where}.{self.mapping['line.description']}", "missing (line description)")
            net_key = self.mapping["line.net_amount"]
            given_net = self.amount("line.net_amount", line.get(net_key), f"{where}.{net_key}")
            if None in values.values():
                continue
            net = cents(values["quantity"] * values["unit_price"])
            if given_net is not None and cents(given_net) != net:
                self.problem(
                    f"{where}.{net_key}",
                    f"is {cents(given_net)} but quantity × unit price is {values['quantity']} × "
                    f"{values['unit_price']} = {net}",
                )
            lines.append(
                Line(
                    line_id=str(number + 1),
                    description=str(description or ""),
                    quantity=values["quantity"],
                    unit_price=values["unit_price"],
                    net_amount=net,
                    vat_rate=cents(values["vat_rate"]),
                    vat_category=str(
                        line.get(self.mapping["line.vat_category"]) or ("S" if values["vat_rate"] else "Z")
                    ),
                )
            )
        return lines

    def breakdown(self, lines: list[Line]) -> list[VatBreakdown]:
        taxable: dict[tuple[str, Decimal], Decimal] = defaultdict(Decimal)
        for line in lines:
            taxable[(line.vat_category, line.vat_rate)] += line.net_amount
        computed = [
            VatBreakdown(category=category, rate=rate, taxable_amount=base, tax_amount=cents(base * rate / 100))
            for (category, rate), base in sorted(taxable.items(), key=lambda item: item[0][1])
        ]
        given = self.raw("vat_breakdown")
        if given is not _MISSING and isinstance(given, list):
            self.compare_breakdown(computed, given)
        return computed

    def compare_breakdown(self, computed: list[VatBreakdown], given: list[Any]) -> None:
        key = self.mapping["vat_breakdown"]
        by_rate = {vat.rate: vat for vat in computed}
        for number, entry in enumerate(given):
            rate = self.amount("vat_breakdown", (entry or {}).get("rate"), f"{key}[{number}].rate")
            if rate is None or cents(rate) not in by_rate:
                self.problem(f"{key}[{number}].rate", f"no line has the VAT rate {rate}")
                continue
            vat = by_rate[cents(rate)]
            for name, expected in (("taxable_amount", vat.taxable_amount), ("tax_amount", vat.tax_amount)):
                value = self.amount("vat_breakdown", entry.get(name), f"{key}[{number}].{name}")
                if value is not None and cents(value) != expected:
                    self.problem(
                        f"{key}[{number}].{name}", f"is {cents(value)} but the lines at {vat.rate}% give {expected}"
                    )

    def check_total(self, field: str, expected: Decimal, why: str) -> Decimal:
        given = self.amount(field)
        if given is not None and cents(given) != expected:
            self.problem(self.mapping[field], f"is {cents(given)} but {why} is {expected}")
        return expected

    def totals(self, lines: list[Line], vat: list[VatBreakdown]) -> Totals:
        if lines:
            line_total = sum((line.net_amount for line in lines), Decimal("0.00"))
            exclusive = self.check_total("tax_exclusive", line_total, "the sum of the lines' net amounts")
            tax = self.check_total("tax_total", sum((v.tax_amount for v in vat), Decimal("0.00")), "the VAT per rate")
        else:
            exclusive = cents(self.amount("tax_exclusive") or Decimal(0))
            line_total, tax = exclusive, cents(self.amount("tax_total") or Decimal(0))
        inclusive = self.check_total("tax_inclusive", exclusive + tax, "amount without VAT + VAT")
        due = self.check_total("due_payable", inclusive, "the amount with VAT")
        return Totals(
            line_total=line_total, tax_exclusive=exclusive, tax_total=tax, tax_inclusive=inclusive, due_payable=due
        )

    def invoice(self, profile: Profile, kind: Literal["invoice", "credit_note"]) -> Invoice:
        self.required(profile)
        lines = self.lines()
        vat = self.breakdown(lines)
        totals = self.totals(lines, vat)
        return Invoice(
            kind=kind,
            number=self.text("number") or "",
            issue_date=self.day("issue_date") or date.today(),
            due_date=self.day("due_date"),
            payment_terms=self.text("payment_terms"),
            currency=(self.text("currency") or "EUR").upper(),
            buyer_reference=self.text("buyer_reference"),
            iban=self.text("iban"),
            seller=self.party("seller"),
            buyer=self.party("buyer"),
            lines=lines,
            vat_breakdown=vat,
            totals=totals,
        )
