"""What a merge request must hold before anything is rendered, and what a record renders with. Free of I/O.

Records are data (the CSV or NDJSON lines the template renders), not entities: they stay dicts."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Literal

from publipost_addresses import control_character
from publipost_contracts import MergeCompleted, Problem

from .domain import DATE_FORMAT


def missing_custom_fields(declared: Iterable[str], given: dict[str, str]) -> list[str]:
    """The template's custom fields the request gives no value for (an empty value counts as none)."""
    return [name for name in declared if not str(given.get(name, "")).strip()]


# Fields every rendering has without the record giving them.
PROVIDED_FIELDS = frozenset({"date"})


def fields_records_need(template_fields: Iterable[str], custom_fields: Iterable[str]) -> frozenset[str]:
    """The template's fields that each record must carry itself."""
    return frozenset(template_fields) - frozenset(custom_fields) - PROVIDED_FIELDS


def missing_record_fields(record: dict[str, Any], needed: frozenset[str]) -> list[str]:
    return sorted(name for name in needed if name not in record)


def effective_output(requested: str, auto_pdf: bool) -> str:
    """A template without automatic PDF conversion keeps its documents as DOCX, whatever was asked."""
    return "pdf" if requested == "pdf" and auto_pdf else "docx"


def default_name(template_name: str, requested_on: date) -> str:
    return f"{template_name} {requested_on.isoformat()}"


def header_text_problem(field: str, text: str, record_index: int | None = None) -> Problem | None:
    """A mailing's name and a document's number end up in e-mail headers (subject, attachment name) and in the
    download's file name: a control character in them is refused here, where it comes in, naming the field."""
    character = control_character(text)
    if character is None:
        return None
    message = (
        f"{text[:60]!r} contains the control character {character}; it would go into e-mail headers and file names"
    )
    return Problem(field=field, message=message, record_index=record_index)


def record_header_problem(index: int, record: dict[str, Any]) -> Problem | None:
    """The document number (the record's id when it has none), as Document reads it."""
    number = record.get("document_number")
    if number is None:
        return header_text_problem("records[].id", str(record.get("id", "")), index)
    return header_text_problem("records[].document_number", str(number), index)


def render_context(record: dict[str, Any], custom_fields: dict[str, str], today: date) -> dict[str, Any]:
    """Custom fields first, then the record's own data; `date` defaults to the day of rendering."""
    return {"date": today.strftime(DATE_FORMAT), **custom_fields, **record}


MissingFields = Literal["refuse", "render_empty"]


@dataclass
class Findings:
    """What validation found: problems refuse the request; warnings (fields rendered empty) go with it.
    Each list keeps the first LISTED entries and counts the rest, so a bad 100,000-record file makes
    a readable answer, not a message over the size limit."""

    LISTED: ClassVar[int] = MergeCompleted.WARNINGS_LISTED
    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_count: int = 0
    warnings: list[Problem] = field(default_factory=list)
    warnings_count: int = 0

    def problem(self, problem: Problem) -> None:
        self.problems_count += 1
        if len(self.problems) < self.LISTED:
            self.problems.append(problem)

    def warning(self, warning: Problem) -> None:
        self.warnings_count += 1
        if len(self.warnings) < self.LISTED:
            self.warnings.append(warning)

    def refusal(self) -> list[Problem]:
        unlisted = self.problems_count - len(self.problems)
        more = [Problem(field="records", message=f"... and {unlisted} more problems")] if unlisted else []
        return self.problems + more

    def check_record(
        self, index: int, record: dict[str, Any], needed: frozenset[str], missing_fields: MissingFields
    ) -> None:
        self.records += 1
        problems, warning = record_problems(index, record, needed, missing_fields)
        for problem in problems:
            self.problem(problem)
        if warning is not None:
            self.warning(warning)


def record_problems(
    index: int, record: dict[str, Any], needed: frozenset[str], missing_fields: MissingFields
) -> tuple[list[Problem], Problem | None]:
    """What refuses the record (no id, a control character in its number, fields the template uses that it
    lacks), and the warning of fields it lacks when those render empty."""
    problems = []
    if record.get("id") is None or str(record["id"]).strip() == "":
        problems.append(Problem(field="records[].id", message="record has no id", record_index=index))
    elif (problem := record_header_problem(index, record)) is not None:
        problems.append(problem)
    if lacking := missing_record_fields(record, needed):
        finding = Problem(
            field="records[]." + ",".join(lacking),
            message=f"record lacks field(s) the template uses: {', '.join(lacking)}",
            record_index=index,
        )
        if missing_fields == "refuse":
            problems.append(finding)
        else:
            return problems, finding.model_copy(update={"message": finding.message + " (rendered empty)"})
    return problems, None
