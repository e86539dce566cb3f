"""What the HTTP API takes and gives: each body built from or into the directory's entities."""

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from .domain import (
    ATTRIBUTE_NAME,
    DEFAULT_ORDER,
    Format,
    Recipient,
    RecipientContact,
    Segment,
    SegmentDefinition,
    check_order,
    day_start,
    read_address,
    read_addresses,
    read_country,
    read_phone,
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
CorrespondenceType = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64)
]


def _blank_is_none(value: Any) -> Any:
    """Empty text means "not known": stored as null, so "has a phone" is one test."""
    return None if isinstance(value, str) and not value.strip() else value


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = None
    email: str = Field(max_length=254)
    correspondence_types: list[CorrespondenceType] = Field(
        default_factory=list, max_length=50, description="Kinds of correspondence this contact receives."
    )

    _name = field_validator("name", mode="before")(_blank_is_none)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return read_address(value)


class RecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=254, description="Where documents go.")
    name: Text | None = None
    cc: list[str] = Field(default_factory=list, max_length=20, description="Copied on every document.")
    document_type: str | None = Field(default=None, max_length=64, description="One of the service's document types.")
    format: Format | None = Field(
        default=None,
        description="The form documents are sent in; none: as the mailing makes them (a PDF, or the invoice format "
        "the mailing names).",
    )
    contacts: list[Contact] = Field(default_factory=list, max_length=50)
    billing_email: str | None = Field(default=None, max_length=254)
    main_email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    postal_address: str | None = Field(default=None, max_length=500, description="Street lines.")
    postal_code: str | None = Field(default=None, max_length=16)
    locality: Text | None = None
    country: str | None = Field(default=None, description="ISO 3166 two-letter code, such as FR.")
    promotional_consent: bool = Field(default=False, description="Agreed to receive promotional e-mail.")
    family: Text | None = None
    type: Text | None = None
    last_visit_date: date | None = None
    attributes: dict[
        Annotated[str, StringConstraints(pattern=ATTRIBUTE_NAME)], Annotated[str, Field(max_length=500)]
    ] = Field(default_factory=dict, description="Custom attributes, text values.")

    _blanks = field_validator(
        "email",
        "name",
        "document_type",
        "billing_email",
        "main_email",
        "phone",
        "postal_address",
        "postal_code",
        "locality",
        "country",
        "family",
        "type",
        mode="before",
    )(_blank_is_none)

    @field_validator("email", "billing_email", "main_email")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else read_address(value)

    @field_validator("cc")
    @classmethod
    def _cc(cls, values: list[str]) -> list[str]:
        return read_addresses(values)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return None if value is None else read_country(value)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else read_phone(value)

    def to_recipient(self, tenant_id: str, customer_number: str) -> Recipient:
        fields = self.model_dump(exclude={"contacts", "last_visit_date"})
        return Recipient(
            tenant_id=tenant_id,
            customer_number=customer_number,
            **fields,
            contacts=[RecipientContact(**contact.model_dump()) for contact in self.contacts],
            last_visit_date=day_start(self.last_visit_date) if self.last_visit_date is not None else None,
        )


class RecipientView(RecipientIn):
    customer_number: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_recipient(cls, recipient: Recipient) -> "RecipientView":
        fields = {k: v for k, v in vars(recipient).items() if v is not None and k in cls.model_fields}
        if "last_visit_date" in fields:
            fields["last_visit_date"] = fields["last_visit_date"].date()
        # from_attributes: the contacts are read from the entity's own, without a copy as dicts first.
        return cls.model_validate(fields, from_attributes=True)


class RecipientPage(BaseModel):
    items: list[RecipientView]
    next_after: str | None = Field(description="Pass as `after` for the next page; null on the last page.")


def merge_record(recipient: Recipient) -> dict[str, Any]:
    """A recipient as a record of a merge: `id` is the customer number, then every attribute (JSON-ready)."""
    view = RecipientView.from_recipient(recipient)
    fields = view.model_dump(mode="json", exclude={"customer_number", "created_at", "updated_at", "email", "name"})
    return {
        "id": view.customer_number,
        "customer_number": view.customer_number,
        "email": view.email,
        "name": view.name,
        **fields,
    }


class ImportResult(BaseModel):
    document_type: str
    rows: int = Field(description="Recipients in the file.")
    created: int
    updated: int


class ResolutionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ORDER),
        description='Rules tried in turn: "record", "directory", "billing", "main".',
    )

    @field_validator("order")
    @classmethod
    def _order(cls, values: list[str]) -> list[str]:
        return list(check_order(values))


class SegmentIn(SegmentDefinition):
    name: str = Field(min_length=1, max_length=200)


class SegmentView(SegmentIn):
    id: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_segment(cls, segment: Segment) -> "SegmentView":
        return cls.model_validate({name: getattr(segment, name) for name in cls.model_fields})


class SegmentCount(BaseModel):
    count: int
