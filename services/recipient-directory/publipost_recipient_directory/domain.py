"""The directory's rules, without I/O: what a valid value is, who a recipient is, which address a document goes to,
who is in a segment."""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, Self, cast, get_args

from publipost_addresses import (
    address_problem,
    invalid_address_message,
    invalid_addresses_message,
    is_valid_address,
    normalise_address,
)
from publipost_refusals import NotFound
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints, field_validator, model_validator

# --- values -------------------------------------------------------------------

CUSTOMER_NUMBER = r"^[A-Za-z0-9_.-]{1,64}$"
ATTRIBUTE_NAME = r"^[A-Za-z0-9_-]{1,64}$"
CustomerNumberText = Annotated[str, StringConstraints(pattern=CUSTOMER_NUMBER)]
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 .()/-]{2,30}$")
_LIST_SEPARATORS = re.compile(r"[,;\s]+")
_YES = {"yes", "y", "true", "1", "oui", "o", "x"}
_NO = {"no", "n", "false", "0", "non", ""}

# pdf, docx, or for invoices a structured format: facturx (the Factur-X PDF), ubl (the PDF and a UBL 2.1 XML).
Format = Literal["pdf", "docx", "facturx", "ubl"]
FORMATS: tuple[str, ...] = get_args(Format)


def read_address(text: str) -> str:
    if (message := invalid_address_message(text.strip())) is not None:
        raise ValueError(message)
    return normalise_address(text)


def split_list(text: str) -> list[str]:
    """A list typed into one cell: items separated by commas, semicolons or spaces."""
    return [item for item in _LIST_SEPARATORS.split(text.strip()) if item]


def read_addresses(values: Sequence[str]) -> list[str]:
    bad = [v for v in values if not is_valid_address(v.strip())]
    if bad:
        raise ValueError(invalid_addresses_message(bad))
    return [normalise_address(v) for v in values]


def read_country(text: str) -> str:
    if not _COUNTRY.match(text.strip()):
        raise ValueError(f"{text!r} is not a two-letter country code (ISO 3166, such as FR)")
    return text.strip().upper()


def read_phone(text: str) -> str:
    if not _PHONE.match(text.strip()):
        raise ValueError(f"{text!r} is not a phone number (digits, spaces, + . - / and parentheses)")
    return text.strip()


def read_yes_no(text: str) -> bool:
    word = text.strip().lower()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise ValueError(f"{text!r} is neither yes nor no (yes/no, true/false, 1/0, oui/non)")


def read_date(text: str) -> date:
    """ISO dates (2024-03-31) and the day-first dates spreadsheets write in Europe (31/03/2024)."""
    value = text.strip()
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date (2024-03-31 or 31/03/2024)")


def day_start(day: date) -> datetime:
    """MongoDB has no date-only type: a day is stored as its midnight UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# --- recipients ---------------------------------------------------------------


@dataclass(kw_only=True)
class RecipientContact:
    """A person at the customer who receives some kinds of correspondence."""

    name: str | None = None
    email: str
    correspondence_types: list[str] = field(default_factory=list)  # lower case


@dataclass(kw_only=True)
class Recipient:
    """A customer of the tenant, by customer number: where its documents go and what it is like.

    Text that is not known is None (never empty), so "has a phone" is one test.
    """

    tenant_id: str
    customer_number: str
    email: str | None = None
    name: str | None = None
    cc: list[str] = field(default_factory=list)  # copied on every document
    document_type: str | None = None
    # The form it wants its documents in; None: as the mailing makes them (its PDF, or the invoice format the
    # mailing names). "pdf" said explicitly keeps an invoice to the plain PDF.
    format: Format | None = None
    contacts: list[RecipientContact] = field(default_factory=list)
    billing_email: str | None = None
    main_email: str | None = None
    phone: str | None = None
    postal_address: str | None = None
    postal_code: str | None = None
    locality: str | None = None
    country: str | None = None
    promotional_consent: bool = False
    family: str | None = None
    type: str | None = None
    last_visit_date: datetime | None = None  # a day, as its midnight UTC (see day_start)
    attributes: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None  # both set by the repository when it stores the recipient
    updated_at: datetime | None = None

    def contact_for(self, correspondence_type: str) -> RecipientContact | None:
        """The first contact receiving this kind of correspondence (whatever its case)."""
        wanted = correspondence_type.strip().lower()
        return next((c for c in self.contacts if wanted in c.correspondence_types and c.email), None)

    def format_for(self, document_type: str | None) -> Format | None:
        """The form it wants a document in: its format holds for its document type (for every type when it
        names none); for any other type it states none."""
        if self.document_type is None:
            return self.format
        wanted = (document_type or "").strip().lower()
        return self.format if wanted == self.document_type.strip().lower() else None


class RecipientNotFound(NotFound):
    def __init__(self, customer_number: str) -> None:
        super().__init__(f"no recipient with customer number {customer_number!r}")


# --- address resolution -------------------------------------------------------

Rule = Literal["record", "directory", "contact", "billing", "main"]
OrderedRule = Literal["record", "directory", "billing", "main"]
DEFAULT_ORDER: tuple[OrderedRule, ...] = ("record", "directory", "billing", "main")


@dataclass(frozen=True)
class AddressRequest:
    record_email: str | None
    customer_number: str | None
    correspondence_type: str | None = None
    prefer_directory: bool = False  # the record's address was refused before
    document_type: str | None = None


@dataclass(frozen=True)
class Resolution:
    email: str | None
    rule: Rule | None
    cc: list[str]
    reason: str | None = None
    format: Format | None = None  # None: the recipient is not in the directory, or states no format


# A rule gives an address, or None and why not.
Outcome = tuple[str | None, str]


def _not_found(request: AddressRequest, recipient: Recipient | None) -> str | None:
    if not request.customer_number:
        return "the record has no customer number to look up"
    if recipient is None:
        return f"customer {request.customer_number} is not in the recipient directory"
    return None


def _from_record(request: AddressRequest, recipient: Recipient | None) -> Outcome:
    email = (request.record_email or "").strip()
    if not email:
        return None, "the record has no e-mail"
    if (problem := address_problem(email)) is not None:
        why = "" if problem == "not an e-mail address" else f" ({problem})"
        return None, f"the record's e-mail {email!r} is not a valid address{why}"
    return normalise_address(email), ""


def _from_field(name: str, label: str) -> Callable[[AddressRequest, Recipient | None], Outcome]:
    def rule(request: AddressRequest, recipient: Recipient | None) -> Outcome:
        if (missing := _not_found(request, recipient)) is not None:
            return None, missing
        assert recipient is not None
        if address := getattr(recipient, name):
            return address, ""
        return None, f"customer {request.customer_number} has no {label} in the recipient directory"

    return rule


def _from_contact(request: AddressRequest, recipient: Recipient | None) -> Outcome:
    if (missing := _not_found(request, recipient)) is not None:
        return None, missing
    assert recipient is not None
    wanted = (request.correspondence_type or "").strip().lower()
    if (contact := recipient.contact_for(wanted)) is not None:
        return contact.email, ""
    return None, f"customer {request.customer_number} has no contact for correspondence type {wanted!r}"


_RULES: dict[Rule, Callable[[AddressRequest, Recipient | None], Outcome]] = {
    "record": _from_record,
    "directory": _from_field("email", "e-mail"),
    "contact": _from_contact,
    "billing": _from_field("billing_email", "billing e-mail"),
    "main": _from_field("main_email", "main e-mail"),
}


def rules_in_order(
    order: Sequence[OrderedRule], correspondence_type: str | None, prefer_directory: bool = False
) -> list[Rule]:
    """The tenant's order, after "contact" when a correspondence type is asked: the send names who handles
    that kind of correspondence, over the client's own address (the record's included). A document whose
    record address was refused goes to the directory's addresses first: "record" comes last, since the
    directory is where a person corrects an address."""
    rules: list[Rule] = list(order)
    if correspondence_type and correspondence_type.strip():
        rules.insert(0, "contact")
    if prefer_directory and "record" in rules:
        rules.remove("record")
        rules.append("record")
    return rules


def resolve(order: Sequence[OrderedRule], request: AddressRequest, recipient: Recipient | None) -> Resolution:
    """The first rule, in the tenant's order, that gives an address; else every failed rule and why."""
    cc = list(recipient.cc) if recipient else []
    format = recipient.format_for(request.document_type) if recipient else None
    failures: dict[str, list[str]] = {}
    for rule in rules_in_order(order, request.correspondence_type, request.prefer_directory):
        email, why = _RULES[rule](request, recipient)
        if email:
            return Resolution(email, rule, cc, format=format)
        failures.setdefault(why, []).append(rule)
    # Rules failing for the same reason (say, an unknown customer) are named together.
    reason = "; ".join(f"{', '.join(rules)}: {why}" for why, rules in failures.items())
    return Resolution(None, None, [], reason)


def check_order(order: Sequence[str]) -> list[OrderedRule]:
    if not order:
        raise ValueError("give at least one rule")
    if "contact" in order:
        raise ValueError(
            "'contact' is not placed by hand: it comes first when a correspondence type is asked"
        )
    unknown = [rule for rule in order if rule not in DEFAULT_ORDER]
    if unknown:
        raise ValueError(f"unknown rules {unknown}; rules are {list(DEFAULT_ORDER)}")
    if len(set(order)) != len(order):
        raise ValueError("each rule may appear once")
    return cast(list[OrderedRule], list(order))


# --- segments -----------------------------------------------------------------


CriterionOp = Literal["eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "present", "absent"]
_ORDERED = {"lt": "$lt", "lte": "$lte", "gt": "$gt", "gte": "$gte", "eq": "$eq", "ne": "$ne"}


class AttributeCriterion(BaseModel):
    """A condition on one custom attribute (a vehicle's mileage, its first registration...), stored as text.

    A number compares as a number (recipients whose value is not one do not match); a text compares as text,
    which orders ISO dates (2015-01-01) right; `in` takes texts, `contains` a text (any case), `present` and
    `absent` none."""

    model_config = ConfigDict(extra="forbid")

    attribute: str = Field(pattern=ATTRIBUTE_NAME)
    op: CriterionOp
    value: float | str | list[str] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Self:
        if self.op in ("present", "absent"):
            if self.value is not None:
                raise ValueError(f"{self.op!r} takes no value")
        elif self.op == "in":
            if not isinstance(self.value, list) or not self.value:
                raise ValueError("'in' takes a list of texts")
        elif self.op == "contains":
            if not isinstance(self.value, str) or not self.value:
                raise ValueError("'contains' takes a text")
        elif not isinstance(self.value, float | int | str):
            raise ValueError(f"{self.op!r} takes a number or a text")
        return self

    def clause(self) -> dict[str, Any]:
        field = f"attributes.{self.attribute}"
        if self.op == "present":
            return _present(field)
        if self.op == "absent":
            return _absent(field)
        if self.op == "in":
            return {field: {"$in": self.value}}
        if self.op == "contains":
            return {field: {"$regex": re.escape(str(self.value)), "$options": "i"}}
        if isinstance(self.value, float | int):
            number = {"$convert": {"input": f"${field}", "to": "double", "onError": None, "onNull": None}}
            # Not a number (missing, or text such as "n/a"): converted to null, which no comparison matches.
            return {"$expr": {"$and": [{"$ne": [number, None]}, {_ORDERED[self.op]: [number, self.value]}]}}
        return {field: {_ORDERED[self.op]: self.value}}


class SegmentFilter(BaseModel):
    """Conditions on the recipient's attributes; a recipient is in the segment when all given conditions hold."""

    model_config = ConfigDict(extra="forbid")

    country_in: list[str] | None = Field(default=None, description="Country codes, one of which the recipient has.")
    country_not_in: list[str] | None = Field(default=None, description="Also matches recipients without a country.")
    has_email: bool | None = None
    has_phone: bool | None = None
    has_postal_address: bool | None = Field(default=None, description="Street, postal code and locality all known.")
    visited_since: date | None = Field(default=None, description="Last visit on or after this day.")
    not_visited_since: date | None = Field(default=None, description="Last visit before this day, or never.")
    opted_in: bool | None = Field(default=None, description="Consented to promotional e-mail.")
    document_type: list[str] | None = Field(default=None, description="One of these document types.")
    family: list[str] | None = Field(default=None, description="One of these families (exact values).")
    type: list[str] | None = Field(default=None, description="One of these types (exact values).")
    postal_code: list[str] | None = Field(default=None, description="One of these postal codes.")
    locality: list[str] | None = Field(default=None, description="One of these localities (exact values).")
    attributes: dict[str, str] = Field(default_factory=dict, description="Custom attributes equal to these values.")
    criteria: list[AttributeCriterion] = Field(
        default_factory=list, max_length=20, description="Conditions on custom attributes: comparisons, lists, text."
    )

    @field_validator("country_in", "country_not_in")
    @classmethod
    def _countries(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else [read_country(v) for v in values]

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, values: dict[str, str]) -> dict[str, str]:
        bad = [name for name in values if not re.match(ATTRIBUTE_NAME, name)]
        if bad:
            raise ValueError(f"attribute names are letters, digits, _ and -: {bad}")
        return values


class SegmentDefinition(BaseModel):
    """Either a filter or a manual selection of customer numbers."""

    model_config = ConfigDict(extra="forbid")

    filter: SegmentFilter | None = None
    customer_numbers: list[CustomerNumberText] | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.filter is None) == (self.customer_numbers is None):
            raise ValueError("give exactly one of filter or customer_numbers")
        return self


def _present(field: str) -> dict[str, Any]:
    return {field: {"$ne": None}}


def _absent(field: str) -> dict[str, Any]:
    return {field: None}  # matches a missing field too


def _has(field: str, wanted: bool) -> dict[str, Any]:
    return _present(field) if wanted else _absent(field)


def segment_query(tenant_id: str, definition: SegmentDefinition) -> dict[str, Any]:
    """One MongoDB query selecting the segment's recipients (empty text is stored as null, so null means absent)."""
    if definition.customer_numbers is not None:
        return {"tenant_id": tenant_id, "customer_number": {"$in": sorted(set(definition.customer_numbers))}}
    f = definition.filter
    assert f is not None
    clauses: list[dict[str, Any]] = []
    if f.country_in is not None:
        clauses.append({"country": {"$in": f.country_in}})
    if f.country_not_in is not None:
        clauses.append({"country": {"$nin": f.country_not_in}})
    if f.has_email is not None:
        clauses.append(_has("email", f.has_email))
    if f.has_phone is not None:
        clauses.append(_has("phone", f.has_phone))
    if f.has_postal_address is True:
        clauses.extend(_present(field) for field in ("postal_address", "postal_code", "locality"))
    elif f.has_postal_address is False:
        clauses.append({"$or": [_absent(field) for field in ("postal_address", "postal_code", "locality")]})
    if f.visited_since is not None:
        clauses.append({"last_visit_date": {"$gte": day_start(f.visited_since)}})
    if f.not_visited_since is not None:
        clauses.append(
            {"$or": [{"last_visit_date": {"$lt": day_start(f.not_visited_since)}}, _absent("last_visit_date")]}
        )
    if f.opted_in is not None:
        clauses.append({"promotional_consent": True} if f.opted_in else {"promotional_consent": {"$ne": True}})
    for name in ("document_type", "family", "type", "postal_code", "locality"):
        values = getattr(f, name)
        if values is not None:
            clauses.append({name: {"$in": values}})
    clauses.extend({f"attributes.{name}": value} for name, value in f.attributes.items())
    clauses.extend(criterion.clause() for criterion in f.criteria)
    query: dict[str, Any] = {"tenant_id": tenant_id}
    if clauses:
        query["$and"] = clauses
    return query


class SegmentNotFound(NotFound):
    def __init__(self, segment_id: str) -> None:
        super().__init__(f"no segment {segment_id!r} for this tenant")


# A filter is stored as its JSON: the days in it as ISO text, which MongoDB keeps as is (it has no date type).
StoredFilter = Annotated[
    SegmentFilter | None, PlainSerializer(lambda kept: kept.model_dump(mode="json") if kept is not None else None)
]


@dataclass(kw_only=True)
class Segment:
    """A named set of the tenant's recipients: a filter, or a manual selection of customer numbers."""

    id: str
    tenant_id: str
    filter: StoredFilter = None
    customer_numbers: list[str] | None = None
    name: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def define(
        cls, segment_id: str, tenant_id: str, name: str, definition: SegmentDefinition, now: datetime
    ) -> "Segment":
        return cls(
            id=segment_id,
            tenant_id=tenant_id,
            filter=definition.filter,
            customer_numbers=definition.customer_numbers,
            name=name,
            created_at=now,
            updated_at=now,
        )

    def query(self) -> dict[str, Any]:
        """The MongoDB query selecting its recipients as they are now."""
        definition = SegmentDefinition(filter=self.filter, customer_numbers=self.customer_numbers)
        return segment_query(self.tenant_id, definition)
