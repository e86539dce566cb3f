"""Importing a recipient file: the columns it may hold, how each cell reads, and the two passes.

Pass one reads the whole file and lists every problem; only a file without any
goes on to pass two, which upserts its rows in batches. Both passes stream: pass
one reads the file a row at a time and keeps the rows it has checked in a
temporary file, which pass two reads a batch at a time. Memory holds one batch
and the customer numbers seen (to catch duplicates), never the rows.
"""

import asyncio
import pickle
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from publipost_records import FileKind, Row, UnreadableFile, WorkbookLimits, read_rows

from .domain import (
    ATTRIBUTE_NAME,
    CUSTOMER_NUMBER,
    FORMATS,
    day_start,
    read_address,
    read_addresses,
    read_country,
    read_date,
    read_phone,
    read_yes_no,
    split_list,
)
from .models import ImportResult
from .repository import RecipientRepository
from .sample_files import csv_bytes, xlsx_bytes


@dataclass(frozen=True)
class Problem:
    """What is wrong, and where: line and column as a spreadsheet shows them (None for the whole file)."""

    line: int | None
    column: str | None
    column_number: int | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "column_number": self.column_number, "msg": self.message}


class ImportRefused(Exception):
    def __init__(self, problems: list[Problem], count: int) -> None:
        super().__init__(f"{count} problems in the file")
        self.problems = problems
        self.count = count


class _Problems:
    """Every problem is counted; the first `listed` are kept, so a file wrong on each of a million cells
    cannot exhaust memory in the listing of its problems."""

    def __init__(self, listed: int) -> None:
        self.listed = listed
        self.items: list[Problem] = []
        self.count = 0

    def add(self, problem: Problem) -> None:
        self.count += 1
        if len(self.items) < self.listed:
            self.items.append(problem)


# --- columns ------------------------------------------------------------------


def _text(limit: int) -> Callable[[str], str]:
    def read(text: str) -> str:
        if len(text) > limit:
            raise ValueError(f"{len(text)} characters is over the {limit}-character limit")
        return text

    return read


def _optional(read: Callable[[str], Any]) -> Callable[[str], Any]:
    """An empty cell clears the field."""
    return lambda text: read(text) if text else None


def _format(text: str) -> str | None:
    value = text.lower() or None  # an empty cell states no format: documents go as the mailing makes them
    if value is not None and value not in FORMATS:
        raise ValueError(f"{text!r} is not a format ({', '.join(FORMATS)})")
    return value


_CUSTOMER_NUMBER = re.compile(CUSTOMER_NUMBER)


def _customer_number(text: str) -> str:
    if not text:
        raise ValueError("the customer number is missing")
    if not _CUSTOMER_NUMBER.match(text):
        raise ValueError(f"{text!r} is not a customer number (letters, digits, _ . -; 64 at most)")
    return text


def _document_type(known: Sequence[str]) -> Callable[[str], str]:
    """The service's document types are settings, so this reader is made per import."""

    def read(text: str) -> str:
        if not text:
            raise ValueError("the document type is missing")
        if text.lower() not in known:
            raise ValueError(f"unknown document type {text!r}; known types: {', '.join(known)}")
        return text.lower()

    return read


def _last_visit(text: str) -> Any:
    return day_start(read_date(text))


@dataclass(frozen=True)
class Column:
    name: str
    read: Callable[[str], Any]
    examples: tuple[str, str]
    required: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("customer_number", _customer_number, ("C0001", "C0002"), required=True),
    Column("document_type", str.lower, ("invoice", "invoice"), required=True),  # checked against the settings
    Column("name", _optional(_text(200)), ("Dupont SARL", "Émilie Martin")),
    Column("email", _optional(read_address), ("compta@dupont.example", "emilie.martin@example.org")),
    Column("cc", lambda t: read_addresses(split_list(t)), ("direction@dupont.example, archives@dupont.example", "")),
    Column("format", _format, ("pdf", "")),
    Column("billing_email", _optional(read_address), ("factures@dupont.example", "")),
    Column("main_email", _optional(read_address), ("contact@dupont.example", "")),
    Column("phone", _optional(read_phone), ("+33 1 23 45 67 89", "06 12 34 56 78")),
    Column("postal_address", _optional(_text(500)), ("12 rue de la Paix", "3 chemin des Vignes")),
    Column("postal_code", _optional(_text(16)), ("75002", "01000")),
    Column("locality", _optional(_text(200)), ("Paris", "Bourg-en-Bresse")),
    Column("country", _optional(read_country), ("FR", "FR")),
    Column("promotional_consent", read_yes_no, ("yes", "no")),
    Column("family", _optional(_text(200)), ("company", "individual")),
    Column("type", _optional(_text(200)), ("customer", "prospect")),
    Column("last_visit_date", _optional(_last_visit), ("2024-03-31", "15/01/2023")),
)
_BY_NAME = {column.name: column for column in COLUMNS}
_CONTACT = re.compile(r"^contact_([1-9][0-9]?)_(name|email|correspondence_types)$")
_ATTRIBUTE_PREFIX = "attr."


def _header_key(header: str) -> str:
    """Headers match whatever their case and with spaces for underscores; custom attribute names keep their case."""
    text = header.strip()
    if text.lower().startswith(_ATTRIBUTE_PREFIX):
        return _ATTRIBUTE_PREFIX + text[len(_ATTRIBUTE_PREFIX) :].strip()
    return text.lower().replace(" ", "_")


@dataclass(frozen=True)
class _Slot:
    """One column of the file: a field, a part of a numbered contact, or a custom attribute."""

    position: int  # 0-based
    header: str
    key: str
    contact: tuple[int, str] | None = None
    attribute: str | None = None


class Layout:
    """The header line of a file: which column is where, and whether the columns make sense."""

    def __init__(self, line: int, headers: Sequence[str], document_types: Sequence[str], problems: _Problems) -> None:
        self.readers = {column.name: column.read for column in COLUMNS}
        self.readers["document_type"] = _document_type(document_types)
        self.slots: list[_Slot] = []
        self.contact_numbers: set[int] = set()
        seen: dict[str, int] = {}
        for position, header in enumerate(headers):
            key = _header_key(header)
            at = (line, header, position + 1)
            if not key:
                if any(h.strip() for h in headers[position + 1 :]):
                    problems.add(Problem(*at, "a column has no name"))
            elif key in seen:
                problems.add(Problem(*at, f"column {header!r} appears twice (also column {seen[key]})"))
            elif (contact := _CONTACT.match(key)) is not None:
                self.contact_numbers.add(int(contact.group(1)))
                self.slots.append(_Slot(position, header, key, contact=(int(contact.group(1)), contact.group(2))))
            elif key.startswith(_ATTRIBUTE_PREFIX):
                name = key.removeprefix(_ATTRIBUTE_PREFIX)
                if re.match(ATTRIBUTE_NAME, name):
                    self.slots.append(_Slot(position, header, key, attribute=name))
                else:
                    problems.add(Problem(*at, "a custom attribute name is letters, digits, _ and - after 'attr.'"))
            elif key in _BY_NAME:
                self.slots.append(_Slot(position, header, key))
            else:
                problems.add(Problem(*at, f"unknown column {header!r}; columns are described in the sample file"))
            seen.setdefault(key, position + 1)
        for column in COLUMNS:
            if column.required and column.name not in seen:
                problems.add(Problem(line, column.name, None, f"the required column {column.name!r} is missing"))
        for number in sorted(self.contact_numbers):
            if f"contact_{number}_email" not in seen:
                problems.add(Problem(line, f"contact_{number}_email", None, f"contact {number} has no e-mail column"))

    def problem(self, line: int, key: str, message: str) -> Problem:
        slot = next((slot for slot in self.slots if slot.key == key), None)
        return Problem(line, slot.header if slot else key, slot.position + 1 if slot else None, message)

    def read(self, line: int, cells: Sequence[str], problems: _Problems) -> tuple[str, str, dict[str, Any]]:
        """(customer number, document type, fields to store) of one line; its problems go to `problems`.

        Only the file's columns become fields, so a column left out of the file leaves stored values alone.
        """
        fields: dict[str, Any] = {}
        contacts: dict[int, dict[str, str]] = {number: {} for number in self.contact_numbers}
        for slot in self.slots:
            text = cells[slot.position] if slot.position < len(cells) else ""
            if slot.contact is not None:
                number, part = slot.contact
                contacts[number][part] = text
            elif slot.attribute is not None:
                fields[f"attributes.{slot.attribute}"] = text or None
            else:
                try:
                    fields[slot.key] = self.readers[slot.key](text)
                except ValueError as exc:
                    problems.add(Problem(line, slot.header, slot.position + 1, str(exc)))
        if contacts:
            fields["contacts"] = self._contacts(line, contacts, problems)
        return fields.pop("customer_number", ""), fields.get("document_type", ""), fields

    def _contacts(self, line: int, contacts: dict[int, dict[str, str]], problems: _Problems) -> list[dict[str, Any]]:
        """The numbered contacts of a line in number order; a contact whose cells are all empty is no contact."""
        found = []
        for number, parts in sorted(contacts.items()):
            if not any(parts.values()):
                continue
            try:
                if not parts.get("email"):
                    raise ValueError(f"contact {number} has a name or correspondence types but no e-mail")
                address = read_address(parts["email"])
            except ValueError as exc:
                problems.add(self.problem(line, f"contact_{number}_email", str(exc)))
                continue
            types = [kind.lower() for kind in split_list(parts.get("correspondence_types", ""))]
            found.append({"name": parts.get("name") or None, "email": address, "correspondence_types": types})
        return found


# --- the two passes -----------------------------------------------------------


def _layout(rows: Iterator[Row], document_types: Sequence[str], problems: _Problems) -> Layout | None:
    try:
        header_line, headers = next(rows)
    except StopIteration:
        problems.add(Problem(None, None, None, "the file has no header line (nor any other)"))
        return None
    return Layout(header_line, headers, document_types, problems)


def check_file(
    rows: Iterator[Row], document_types: Sequence[str], listed: int = 10_000, checked: BinaryIO | None = None
) -> tuple[str, int]:
    """Read the whole file once: its document type and number of recipients, or ImportRefused listing every problem.

    While no problem is found, each row's (customer number, fields) goes to `checked`, so the second pass
    need not parse the file again (an .xlsx takes ten times longer to parse than this takes to read back).
    """
    problems = _Problems(listed)
    first_line_of: dict[str, int] = {}
    file_type: tuple[str, int] | None = None
    try:
        layout = _layout(rows, document_types, problems)
        for line, cells in rows if layout is not None else ():
            customer_number, document_type, fields = layout.read(line, cells, problems)
            if customer_number in first_line_of:
                message = f"customer number {customer_number} is already on line {first_line_of[customer_number]}"
                problems.add(layout.problem(line, "customer_number", message))
            elif customer_number:
                first_line_of[customer_number] = line
            if document_type and file_type is None:
                file_type = (document_type, line)
            elif document_type and document_type != file_type[0]:
                message = f"one document type per file: this file is for {file_type[0]!r} (line {file_type[1]})"
                problems.add(layout.problem(line, "document_type", f"{document_type!r}: {message}"))
            if checked is not None and problems.count == 0:
                pickle.dump((customer_number, fields), checked, pickle.HIGHEST_PROTOCOL)
    except UnreadableFile as exc:
        problems.add(Problem(exc.line, None, None, str(exc)))
    if problems.count == 0 and not first_line_of:
        problems.add(Problem(None, None, None, "the file holds no recipients"))
    if problems.count:
        raise ImportRefused(problems.items, problems.count)
    assert file_type is not None
    return file_type[0], len(first_line_of)


def _batches(checked: BinaryIO, size: int) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The checked rows, `size` at a time, as (customer number, fields)."""
    batch: list[tuple[str, dict[str, Any]]] = []
    while True:
        try:
            batch.append(pickle.load(checked))  # our own temporary file, written by check_file
        except EOFError:
            break
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def import_file(
    path: Path,
    kind: FileKind,
    *,
    tenant_id: str,
    recipients: RecipientRepository,
    document_types: Sequence[str],
    batch_size: int = 1000,
    listed: int = 10_000,
    workbook_limits: WorkbookLimits | None = None,
) -> ImportResult:
    """Check the whole file, then upsert it batch by batch; a file with any problem stores nothing.

    Both passes run in a worker thread, so the service keeps answering while a large file is read.
    Should the database fail half-way, importing the file again finishes the job: rows are upserts.
    """
    with tempfile.TemporaryFile(prefix="recipient-import-") as checked:
        document_type, rows = await asyncio.to_thread(
            check_file, read_rows(path, kind, workbook_limits), document_types, listed, checked
        )
        checked.seek(0)
        created = updated = 0
        batches = _batches(checked, batch_size)
        while (batch := await asyncio.to_thread(next, batches, None)) is not None:
            batch_created, batch_updated = await recipients.import_batch(tenant_id, batch)
            created += batch_created
            updated += batch_updated
    return ImportResult(document_type=document_type, rows=rows, created=created, updated=updated)


# --- the sample file ----------------------------------------------------------

_SAMPLE_EXTRA = (
    ("contact_1_name", ("Paul Dupont", "")),
    ("contact_1_email", ("paul.dupont@dupont.example", "")),
    ("contact_1_correspondence_types", ("reminder, due_notice", "")),
    ("attr.sector", ("retail", "")),
)


def _sample(document_type: str, document_types: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    comments = [
        "Publipost recipients: one line per customer. Lines starting with # are comments.",
        f"Required columns: customer_number, document_type. One document type per file: {', '.join(document_types)}.",
        "Lists (cc, correspondence types) are separated by commas. Dates: 2024-03-31 or 31/03/2024.",
        "promotional_consent is yes or no. An empty cell clears the field; a column left out leaves it as it is.",
        "More contacts: contact_2_name, contact_2_email, ...; custom attributes: any column named attr.<name>.",
    ]
    header = [c.name for c in COLUMNS] + [name for name, _ in _SAMPLE_EXTRA]
    rows = [[*(c.examples[i] for c in COLUMNS), *(examples[i] for _, examples in _SAMPLE_EXTRA)] for i in range(2)]
    for row in rows:
        row[1] = document_type
    return comments, [header, *rows]


def sample_csv(document_types: Sequence[str]) -> bytes:
    return csv_bytes(*_sample(document_types[0], document_types))


def sample_xlsx(document_types: Sequence[str]) -> bytes:
    comments, rows = _sample(document_types[0], document_types)
    text_columns = [i for i, name in enumerate(rows[0]) if name in ("customer_number", "postal_code", "phone")]
    return xlsx_bytes(comments, rows, text_columns)
