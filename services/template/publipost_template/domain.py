"""Template rules, free of I/O: which fields a record of each entity type brings, which must be declared custom,
how a Word field name becomes a template variable, how a refusal names what it is about, and the stored
template and its versions."""

import json
import keyword
import re
import unicodedata
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from publipost_contracts.events import TemplateType
from publipost_einvoice import INVOICE_ENTITY_TYPES, check_mapping
from publipost_refusals import Conflict, Invalid, NotFound

DOCX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

# Every record carries these, whatever its entity type; merge fills `date` itself when the record has none.
_COMMON = ("name", "email", "phone", "address", "postal_code", "city", "country", "document_number", "date")

_INVOICE = (
    *_COMMON, "customer_number", "invoice_number", "lines", "amount", "tax", "total", "amount_due", "due_date",
    "iban", "seller", "payment_terms", "currency", "vat_number", "vat_breakdown",
)  # fmt: skip

# The record's own data per entity type ("predefined fields"): what the owning system sends in each record.
PREDEFINED_FIELDS: dict[str, tuple[str, ...]] = {
    "client": (
        *_COMMON, "customer_number", "contract", "premium", "tax", "amount_due", "due_date", "branch", "manager",
    ),
    "contact": (*_COMMON, "first_name", "last_name", "title", "job_title", "company", "customer_number"),
    "broker": (*_COMMON, "broker_number", "commission_rate", "branch", "manager"),
    "manager": (*_COMMON, "first_name", "last_name", "job_title", "branch"),
    "insurer": (*_COMMON, "insurer_code", "branch"),
    "supplier": (*_COMMON, "supplier_number", "vat_number", "iban", "amount_due", "due_date"),
    "contract": (
        *_COMMON, "customer_number", "contract", "product", "start_date", "end_date", "premium", "tax", "branch",
    ),
    "project": (*_COMMON, "customer_number", "project_number", "product", "start_date", "branch", "manager"),
    "complaint": (*_COMMON, "customer_number", "complaint_number", "contract", "received_date", "subject", "status"),
    "quote": (*_COMMON, "customer_number", "quote_number", "product", "premium", "tax", "valid_until", "branch"),
    "claim": (
        *_COMMON, "customer_number", "claim_number", "contract", "incident_date", "amount", "status", "branch",
    ),
    "premium_receipt": (
        *_COMMON, "customer_number", "contract", "receipt_number", "period_start", "period_end",
        "premium", "tax", "amount_due", "due_date", "branch",
    ),
    "invoice": _INVOICE,
    "credit_note": _INVOICE,
}


ENTITY_TYPES = tuple(PREDEFINED_FIELDS)

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_CUSTOM_FIELDS = 50


@dataclass(frozen=True)
class Problem:
    """One reason a template is refused: the request field it is about, what is wrong, and details to act on."""

    field: str
    message: str
    context: dict[str, Any] = field(default_factory=dict)

    def as_detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"loc": ["body", self.field], "msg": self.message, "type": "template_rejected"}
        if self.context:
            detail["ctx"] = self.context
        return detail


class TemplateRejected(Invalid):
    """Answered 422 with one detail per problem (not the one-line reason other refusals give)."""

    def __init__(self, field: str, message: str, **context: Any) -> None:
        self.problems = [Problem(field, message, context)]
        super().__init__(f"{field}: {message}")

    @classmethod
    def of(cls, problems: list[Problem]) -> "TemplateRejected":
        rejected = cls(problems[0].field, problems[0].message, **problems[0].context)
        rejected.problems = problems
        return rejected


def check_entity_type(entity_type: str) -> tuple[str, ...]:
    """The predefined fields of an entity type; an unknown type is refused naming the known ones."""
    if entity_type not in PREDEFINED_FIELDS:
        raise TemplateRejected(
            "entity_type", f"unknown entity type {entity_type!r}; known: {', '.join(ENTITY_TYPES)}", known=ENTITY_TYPES
        )
    return PREDEFINED_FIELDS[entity_type]


def check_invoice_mapping(entity_type: str, text: str) -> list[tuple[str, str]]:
    """The template's `invoice_mapping` (a JSON object: invoice field → record key path) as stored pairs (a key
    path holds dots, which a stored key may not); only invoice and credit note templates take one."""
    if not text.strip():
        return []
    if entity_type not in INVOICE_ENTITY_TYPES:
        raise TemplateRejected(
            "invoice_mapping", f"only templates of entity type {' or '.join(INVOICE_ENTITY_TYPES)} take one"
        )
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateRejected(
            "invoice_mapping", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(mapping, dict):
        raise TemplateRejected("invoice_mapping", "must be a JSON object: invoice field → record key path")
    try:
        check_mapping(mapping)
    except ValueError as exc:
        raise TemplateRejected("invoice_mapping", str(exc)) from exc
    return sorted(mapping.items())


def safe_identifier(word_name: str) -> str:
    """A Word mail-merge field name as a template variable: «Nom du client» → nom_du_client, «N°» → n.

    Lower case so that «Name» meets the predefined `name`; a Python keyword gets a trailing underscore
    because Jinja would read `{{ if }}` as syntax.
    """
    ascii_name = unicodedata.normalize("NFKD", word_name).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9]+", "_", ascii_name).strip("_").lower() or "field"
    if name[0].isdigit():
        name = f"field_{name}"
    if keyword.iskeyword(name) or name in ("true", "false", "none", "loop"):
        name += "_"
    return name


def parse_custom_fields(raw: str, *, word_names: dict[str, str] | None = None) -> list[str]:
    """The custom fields declared at upload (`signatory, due_reason`), in order, once each.

    A Word field's own name («Nom du signataire») is accepted for the variable it became.
    """
    word_names = word_names or {}
    names: list[str] = []
    for part in raw.split(","):
        name = word_names.get(part.strip(), part.strip())
        if not name or name in names:
            continue
        if not _IDENTIFIER.match(name):
            raise TemplateRejected(
                "custom_fields",
                f"{name!r} is not a field name: letters, digits and _ only, starting with a letter, 64 at most",
                name=name,
            )
        names.append(name)
    if len(names) > MAX_CUSTOM_FIELDS:
        raise TemplateRejected("custom_fields", f"{len(names)} custom fields; at most {MAX_CUSTOM_FIELDS}")
    return names


def split_first_generation_fields(fields: list[str], entity_type: str = "client") -> tuple[list[str], list[str]]:
    """A template stored before custom fields were declared: merge was given values for every field the
    record did not carry, so whatever is not predefined was custom all along."""
    predefined = set(PREDEFINED_FIELDS[entity_type])
    return sorted(f for f in fields if f in predefined), sorted(f for f in fields if f not in predefined)


@dataclass(frozen=True)
class FieldSplit:
    fields: list[str]
    predefined: list[str]
    custom: list[str]


def split_fields(used: set[str], *, entity_type: str, custom: list[str]) -> FieldSplit:
    """Split the fields a template uses into the record's own and the custom ones asked at generation time.

    Refused, all at once: a used field that is neither predefined nor declared (a typo merge would leave
    blank in every document), a declared field that is predefined (the record's value would always win),
    and a declared field the template does not use (merge would ask for a value nobody sees).
    """
    predefined = set(check_entity_type(entity_type))
    problems = []
    unknown = sorted(used - predefined - set(custom))
    if unknown:
        problems.append(
            Problem(
                "file",
                f"fields neither predefined for {entity_type!r} nor declared in custom_fields: {', '.join(unknown)}",
                {"names": unknown, "entity_type": entity_type},
            )
        )
    clashing = [name for name in custom if name in predefined]
    if clashing:
        problems.append(
            Problem(
                "custom_fields",
                f"already predefined for {entity_type!r} (filled from the record): {', '.join(clashing)}",
                {"names": clashing},
            )
        )
    unused = [name for name in custom if name not in used and name not in predefined]
    if unused:
        problems.append(
            Problem("custom_fields", f"declared but not used by the template: {', '.join(unused)}", {"names": unused})
        )
    if problems:
        raise TemplateRejected.of(problems)
    return FieldSplit(fields=sorted(used), predefined=sorted(used & predefined), custom=list(custom))


class TemplateNotFound(NotFound):
    def __init__(self, template_id: str, version: int | None = None) -> None:
        what = f"template {template_id!r}" if version is None else f"version {version} of template {template_id!r}"
        super().__init__(f"no {what} for this tenant")


class VersionConflict(Conflict):
    """Other versions kept being added while this one was stored; the caller may simply retry."""

    def __init__(self) -> None:
        super().__init__("other versions were being added at the same time; send it again")


@dataclass(frozen=True)
class TemplateOptions:
    """What is chosen at upload besides the file, stored with each version."""

    template_type: TemplateType = "standard"
    auto_pdf: bool = True
    validation_required: bool = False
    entity_type: str = "client"
    custom_fields: str = ""  # as typed: "signatory, reason"
    invoice_mapping: str = ""  # as typed: a JSON object, invoice field → record key path

    def changed(self, changes: "OptionChanges") -> "TemplateOptions":
        """These options, except those a new version is given."""
        given = {name: value for name, value in vars(changes).items() if value is not None}
        return replace(self, **given)


@dataclass(frozen=True)
class OptionChanges:
    """The options sent with a new version; None: keep the latest version's."""

    template_type: TemplateType | None = None
    auto_pdf: bool | None = None
    validation_required: bool | None = None
    entity_type: str | None = None
    custom_fields: str | None = None
    invoice_mapping: str | None = None


@dataclass(kw_only=True)
class TemplateVersion:
    """One uploaded file of a template and what merge must know to render it; never changed once stored,
    since merge may be rendering any version."""

    tenant_id: str
    template_id: str
    version: int
    blob_id: str  # the DOCX merge renders
    original_blob_id: str | None = None  # the upload as sent, when its Word merge fields were converted
    filename: str
    fields: list[str]
    predefined_fields: list[str]
    custom_fields: list[str]
    template_type: TemplateType = "standard"
    auto_pdf: bool = True
    validation_required: bool = False
    entity_type: str = "client"
    # pairs, not a mapping: a Word field name may hold dots or $, which a stored key may not
    field_mapping: list[tuple[str, str]] = field(default_factory=list)
    conversion_notes: list[str] = field(default_factory=list)
    # invoice field → record key path, over publipost_einvoice's defaults; pairs for the same reason
    invoice_mapping: list[tuple[str, str]] = field(default_factory=list)
    created_at: datetime

    @classmethod
    def uploaded(
        cls,
        *,
        tenant_id: str,
        template_id: str,
        number: int,
        filename: str,
        fields: FieldSplit,
        options: TemplateOptions,
        blob_id: str,
        original_blob_id: str | None,
        field_mapping: dict[str, str],
        conversion_notes: list[str],
        created_at: datetime,
    ) -> "TemplateVersion":
        return cls(
            tenant_id=tenant_id,
            template_id=template_id,
            version=number,
            blob_id=blob_id,
            original_blob_id=original_blob_id,
            filename=filename,
            fields=fields.fields,
            predefined_fields=fields.predefined,
            custom_fields=fields.custom,
            template_type=options.template_type,
            auto_pdf=options.auto_pdf,
            validation_required=options.validation_required,
            entity_type=options.entity_type,
            field_mapping=list(field_mapping.items()),
            conversion_notes=conversion_notes,
            invoice_mapping=check_invoice_mapping(options.entity_type, options.invoice_mapping),
            created_at=created_at,
        )

    @property
    def next_number(self) -> int:
        return self.version + 1

    @property
    def blob_ids(self) -> list[str]:
        """Every file this version holds."""
        return [self.blob_id] if self.original_blob_id is None else [self.blob_id, self.original_blob_id]

    def options(self) -> TemplateOptions:
        """This version's options: a new version keeps them, except those given with it."""
        return TemplateOptions(
            template_type=self.template_type,
            auto_pdf=self.auto_pdf,
            validation_required=self.validation_required,
            entity_type=self.entity_type,
            custom_fields=", ".join(self.custom_fields),
            invoice_mapping=json.dumps(dict(self.invoice_mapping)) if self.invoice_mapping else "",
        )


@dataclass(kw_only=True)
class Template:
    """A template: its name and when it last changed. What merge renders is in its versions."""

    id: str
    tenant_id: str
    name: str
    created_at: datetime
    # Absent only on a template stored before versions existed, until the upgrade at start gives it one.
    updated_at: datetime | None = None

    @classmethod
    def new(cls, *, tenant_id: str, name: str, now: datetime) -> "Template":
        return cls(id=str(uuid.uuid4()), tenant_id=tenant_id, name=name, created_at=now, updated_at=now)


@dataclass(kw_only=True)
class FirstGenerationTemplate:
    """A template stored before versions existed: its one file and fields sit on the template itself."""

    id: str
    tenant_id: str
    name: str
    blob_id: str
    fields: list[str]
    version: int = 1
    created_at: datetime

    def as_version(self) -> TemplateVersion:
        """Its file as version 1 (or the number it had), with the options every template had then: the defaults."""
        predefined, custom = split_first_generation_fields(self.fields)
        return TemplateVersion(
            tenant_id=self.tenant_id,
            template_id=self.id,
            version=self.version,
            blob_id=self.blob_id,
            filename=f"{self.name}.docx",
            fields=sorted(self.fields),
            predefined_fields=predefined,
            custom_fields=custom,
            created_at=self.created_at,
        )


def stored_now() -> datetime:
    """Now, to the millisecond: what the database keeps, so an answer and a later read agree."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
