"""E-mail template rules, free of I/O: which variables a subject or body may name, the legacy
placeholders, the default subject of each document type, and the stored e-mail template.

Variables use the {name} syntax dispatch fills (str.format fields, {{ and }} for literal braces), so
a template accepted here never fails at send time for a name it does not know.
"""

import re
import string
import uuid
from dataclasses import dataclass
from datetime import datetime

from publipost_addresses import control_character
from publipost_contracts.events import TemplateType
from publipost_refusals import NotFound

from .domain import PREDEFINED_FIELDS, Problem, TemplateRejected, check_entity_type, stored_now

# What dispatch knows about every document it sends, whatever the entity: `document_name` is what the
# document is ("Invoice", from the dispatch's document type), never the mailing's internal name; `date` the
# document's date (its record's, else the day it was rendered), not the day it is sent.
DOCUMENT_VARIABLES = ("document_name", "document_number", "date", "client_name", "customer_number")

# Record fields that hold a list (an invoice's lines): a document template repeats them, an e-mail cannot
# name them, dispatch fills a record's single values only.
LIST_FIELDS = frozenset({"lines"})

# Placeholders of the products Publipost replaces, saved in the {…} form.
LEGACY_PLACEHOLDERS = {"NUMFACT": "document_number", "DATEFACT": "date", "NOMSOC": "client_name"}

DEFAULT_SUBJECTS: dict[TemplateType, str] = {
    "standard": "{document_name} {document_number} - {client_name}",
    "payment_reminder": "Payment reminder {document_number} - {client_name}",
    "due_notice": "Due notice {document_number} - {client_name}",
    "unpaid_premium_reminder": "Unpaid premium {document_number} - {client_name}",
}

_LEGACY_TEXT = re.compile(r"<([A-Z][A-Z_]{2,})>")
_LEGACY_HTML = re.compile(r"&lt;([A-Z][A-Z_]{2,})&gt;")  # typed in an HTML editor, the brackets arrive escaped


def allowed_variables(entity_type: str) -> list[str]:
    """The document's variables, then the record's own fields for that entity type (dispatch fills them from
    the document's record: publipost_contracts.reads.DocumentView.fields)."""
    check_entity_type(entity_type)
    fields = [name for name in PREDEFINED_FIELDS[entity_type] if name not in LIST_FIELDS]
    return list(dict.fromkeys((*DOCUMENT_VARIABLES, *fields)))


@dataclass(frozen=True)
class EmailContent:
    subject: str
    body_text: str
    body_html: str | None
    signature: str


@dataclass(frozen=True)
class CheckedEmail:
    content: EmailContent
    variables: list[str]


def check_email_template(content: EmailContent, *, entity_type: str, template_type: TemplateType) -> CheckedEmail:
    """Normalise legacy placeholders, fill a missing subject, and refuse any variable dispatch could not fill."""
    allowed = set(allowed_variables(entity_type))
    subject = content.subject or DEFAULT_SUBJECTS[template_type]
    texts = {
        "subject": _normalise(subject, _LEGACY_TEXT),
        "body_text": _normalise(content.body_text, _LEGACY_TEXT),
        "signature": _normalise(content.signature, _LEGACY_TEXT),
    }
    if content.body_html is not None:
        texts["body_html"] = _normalise(content.body_html, _LEGACY_HTML)
    problems: list[Problem] = []
    if "\n" in texts["subject"] or "\r" in texts["subject"]:
        problems.append(Problem("subject", "a subject is a single line"))
    elif (character := control_character(texts["subject"])) is not None:
        problems.append(Problem("subject", f"a subject may not contain the control character {character}"))
    used: set[str] = set()
    for field, text in texts.items():
        names, problem = _variables(field, text, legacy=_LEGACY_HTML if field == "body_html" else _LEGACY_TEXT)
        if problem:
            problems.append(problem)
            continue
        unknown = sorted(names - allowed)
        if unknown:
            where = [f"{_shown(n)} at {_position(text, _shown(n))}" for n in unknown]
            problems.append(
                Problem(
                    field,
                    f"variables dispatch cannot fill: {', '.join(where)}"
                    f"; known for {entity_type!r}: {', '.join(sorted(allowed))}",
                    {"names": unknown},
                )
            )
        used |= names & allowed
    if problems:
        raise TemplateRejected.of(problems)
    return CheckedEmail(
        EmailContent(texts["subject"], texts["body_text"], texts.get("body_html"), texts["signature"]),
        sorted(used),
    )


class EmailTemplateNotFound(NotFound):
    def __init__(self, template_id: str) -> None:
        super().__init__(f"no e-mail template {template_id!r} for this tenant")


@dataclass(frozen=True)
class EmailTemplateDraft:
    """An e-mail template as written, before it is checked."""

    name: str
    template_type: TemplateType
    entity_type: str
    content: EmailContent


@dataclass(kw_only=True)
class EmailTemplate:
    """An e-mail template as stored: checked, so dispatch can fill every variable it names."""

    id: str
    tenant_id: str
    name: str
    template_type: TemplateType
    entity_type: str
    subject: str
    body_text: str
    body_html: str | None = None
    signature: str = ""
    variables: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def checked(cls, draft: EmailTemplateDraft, *, id: str, tenant_id: str, created_at: datetime) -> "EmailTemplate":
        """The stored form: legacy placeholders normalised, default subject filled, unknown variables refused."""
        checked = check_email_template(draft.content, entity_type=draft.entity_type, template_type=draft.template_type)
        return cls(
            id=id,
            tenant_id=tenant_id,
            name=draft.name,
            template_type=draft.template_type,
            entity_type=draft.entity_type,
            subject=checked.content.subject,
            body_text=checked.content.body_text,
            body_html=checked.content.body_html,
            signature=checked.content.signature,
            variables=checked.variables,
            created_at=created_at,
            updated_at=stored_now(),
        )

    @classmethod
    def new(cls, draft: EmailTemplateDraft, *, tenant_id: str) -> "EmailTemplate":
        return cls.checked(draft, id=str(uuid.uuid4()), tenant_id=tenant_id, created_at=stored_now())

    def replaced_by(self, draft: EmailTemplateDraft) -> "EmailTemplate":
        """The same template (its id, tenant and creation) with what was written instead."""
        return self.checked(draft, id=self.id, tenant_id=self.tenant_id, created_at=self.created_at)


def _shown(name: str) -> str:
    return name if name.startswith("<") else "{" + name + "}"


def _position(text: str, written: str) -> str:
    """Where `written` first stands in `text` as a variable ({{name}} is literal text, not one)."""
    escaped = re.escape(written[1:-1])
    opening, closing = ("<|&lt;", ">|&gt;") if written.startswith("<") else (r"(?<!\{)\{", r"\}")
    match = re.search(f"(?:{opening}){escaped}(?:{closing})", text)
    offset = match.start() if match else 0
    line = text.count("\n", 0, offset) + 1
    return f"line {line}, column {offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


def _normalise(text: str, legacy: re.Pattern[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = LEGACY_PLACEHOLDERS.get(match.group(1))
        return f"{{{name}}}" if name else match.group(0)

    return legacy.sub(replace, text)


def _variables(field: str, text: str, *, legacy: re.Pattern[str]) -> tuple[set[str], Problem | None]:
    """The {names} in `text` and the legacy placeholders left (unknown ones); or why the text does not parse."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        return set(), Problem(field, f"{exc}; write {{{{ and }}}} for a literal brace (in CSS, say)")
    formatted = sorted(
        "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        for _, name, spec, conversion in parsed
        if spec or conversion
    )
    if formatted:
        # dispatch inserts every value as text: a number format would fail at send time
        return set(), Problem(
            field,
            f"formats are not supported, values are inserted as sent: {', '.join(formatted)}; "
            "write {{ and }} for a literal brace (in CSS, say)",
        )
    names = {name for _, name, _, _ in parsed if name is not None}
    names |= {f"<{word}>" for word in legacy.findall(text)}
    return names, None
