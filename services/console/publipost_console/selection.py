"""A directory selection as the forms give it, made into what the services take, without I/O: a segment's
filter (every condition the directory offers, custom-attribute comparisons included), the custom fields of
a mailing, an import's refusal as table rows."""

from collections.abc import Mapping
from typing import Any, get_args

from publipost_contracts.events import TemplateType

TEMPLATE_TYPES: tuple[str, ...] = get_args(TemplateType)
# The directory's comparisons on a custom attribute (its AttributeCriterion.op).
CRITERION_OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "present", "absent")
ORDERED_OPS = frozenset({"eq", "ne", "lt", "lte", "gt", "gte"})
CRITERIA_ROWS = 3
LIST_FIELDS = ("country_in", "country_not_in", "document_type", "family", "type", "postal_code", "locality")
YES_NO_FIELDS = ("has_email", "has_phone", "has_postal_address", "opted_in")
DATE_FIELDS = ("visited_since", "not_visited_since")


class SelectionProblem(ValueError):
    """A condition that cannot be read, naming its field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _value(op: str, text: str) -> float | str | list[str] | None:
    """A number compares as a number at the directory, so a value that reads as one is sent as one."""
    if op in ("present", "absent"):
        return None
    if op == "in":
        return split_list(text)
    if op in ORDERED_OPS:
        try:
            return float(text)
        except ValueError:
            return text
    return text


def segment_filter(form: Mapping[str, str]) -> dict[str, Any]:
    """The directory's SegmentFilter from the filter fields (`f_<condition>`, criteria `crit_attr_<n>`,
    `crit_op_<n>`, `crit_value_<n>`); a field left empty sets no condition."""
    found: dict[str, Any] = {}
    for name in LIST_FIELDS:
        if values := split_list(form.get(f"f_{name}", "")):
            found[name] = values
    for name in YES_NO_FIELDS:
        answer = form.get(f"f_{name}", "")
        if answer in ("yes", "no"):
            found[name] = answer == "yes"
    for name in DATE_FIELDS:
        if day := form.get(f"f_{name}", "").strip():
            found[name] = day
    criteria = []
    for row in range(CRITERIA_ROWS):
        attribute = form.get(f"crit_attr_{row}", "").strip()
        if not attribute:
            continue
        op = form.get(f"crit_op_{row}", "eq")
        if op not in CRITERION_OPS:
            raise SelectionProblem(f"crit_op_{row}", f"unknown comparison {op!r}")
        text = form.get(f"crit_value_{row}", "").strip()
        if op not in ("present", "absent") and not text:
            raise SelectionProblem(f"crit_value_{row}", f"the condition on {attribute} needs a value")
        criteria.append({"attribute": attribute, "op": op, "value": _value(op, text)})
    if criteria:
        found["criteria"] = criteria
    return found


def custom_field_values(fields: list[str], form: Mapping[str, str]) -> dict[str, str]:
    """The template's custom fields as typed (`cf_<name>`); merge says which are missing."""
    return {name: form[f"cf_{name}"].strip() for name in fields if form.get(f"cf_{name}", "").strip()}


def import_problems(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The directory's refusal of a whole file as rows: line, column, message."""
    rows = []
    for problem in answer.get("detail") or []:
        if isinstance(problem, Mapping):
            where = problem.get("loc")
            column = problem.get("column") or (".".join(str(p) for p in where if p != "body") if where else "")
            rows.append({"line": problem.get("line"), "column": column or "", "message": problem.get("msg", "")})
    return rows
