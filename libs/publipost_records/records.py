"""Merge records from a file: a JSON array, NDJSON, CSV or the first sheet of an .xlsx, read one record at a
time (never the whole file in memory), each with where it is in the file. A file that cannot be read stops
the reading with UnreadableFile naming the line and column (the sheet, row and column of a workbook)."""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from .rows import Row, SheetRows, UnreadableFile, WorkbookLimits, csv_rows

RecordsKind = Literal["json", "ndjson", "csv", "xlsx"]
KINDS: dict[str, RecordsKind] = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv", ".xlsx": "xlsx"}
MAX_RECORD_CHARS = 1_000_000  # what one record may hold: a record travels in one message, itself under 1 MB
_READ_CHARS = 64 * 1024


def records_kind(filename: str | None) -> RecordsKind:
    """The kind of records file its name says, or UnreadableFile naming the kinds there are."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in KINDS:
        what = f"{suffix} is not a records file" if suffix else f"{filename!r} has no extension saying its format"
        raise UnreadableFile(f"{what}; send .json, .ndjson, .csv or .xlsx")
    return KINDS[suffix]


@dataclass(frozen=True)
class Record:
    place: str  # "line 4", "sheet 'Clients', row 4": where a problem with the record is found
    data: dict[str, Any]


def read_records(path: Path, kind: RecordsKind, limits: WorkbookLimits | None = None) -> Iterator[Record]:
    """A table's (CSV, XLSX) columns whose every value is a number are read as numbers, as a JSON record
    carries them, so a template's `{% if amount_due > 500 %}` holds whatever file the records came in; a
    column with one value that is not (a postal code "01000", a reference "A-12") stays text."""
    if kind == "json":
        return _json_array(path)
    if kind == "ndjson":
        return _ndjson(path)
    if kind == "csv":
        return _numbers_as_numbers(_table(csv_rows(path), None), _numeric_columns(_table(csv_rows(path), None)))
    first = SheetRows(path, limits or WorkbookLimits())
    numeric = _numeric_columns(_table(iter(first), first))
    sheet = SheetRows(path, limits or WorkbookLimits())
    return _numbers_as_numbers(_table(iter(sheet), sheet), numeric)


# What identifies a record or its recipient stays text, whatever its digits: "1042" is not a quantity.
ALWAYS_TEXT = frozenset({"id", "customer_number", "document_number", "email", "phone", "postal_code"})
# A plain number: no sign but minus, no leading zero ("0123" is a code), no thousands separator; a decimal
# comma as French spreadsheets write it.
_NUMBER = re.compile(r"-?(0|[1-9][0-9]{0,17})([.,][0-9]{1,12})?")


def _numeric_columns(records: Iterator[Record]) -> frozenset[str]:
    """A first pass over the table: the columns whose every non-empty value is a plain number."""
    candidates: set[str] | None = None
    seen: set[str] = set()
    for record in records:
        if candidates is None:
            candidates = set(record.data) - ALWAYS_TEXT
        for name in list(candidates):
            value = record.data.get(name, "")
            if value == "":
                continue
            if _NUMBER.fullmatch(value):
                seen.add(name)
            else:
                candidates.discard(name)
    return frozenset((candidates or set()) & seen)


def _numbers_as_numbers(records: Iterator[Record], numeric: frozenset[str]) -> Iterator[Record]:
    for record in records:
        if numeric:
            for name in numeric & record.data.keys():
                if (value := record.data[name]) != "":
                    text = value.replace(",", ".")
                    record.data[name] = float(text) if "." in text else int(text)
        yield record


# --- JSON ---------------------------------------------------------------------


def _object(data: object, line: int, column: int | None = None) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UnreadableFile(f"a record must be a JSON object, not {type(data).__name__}", line, column)
    return data


def _ndjson(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8-sig", newline="") as text:
        for number, line in enumerate(_text_lines(text), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UnreadableFile(f"not valid JSON: {exc.msg}", number, exc.colno) from exc
            yield Record(f"line {number}", _object(data, number))


def _text_lines(text: TextIO) -> Iterator[str]:
    """The file's lines, each refused past MAX_RECORD_CHARS rather than read whole, however long."""
    number = 0
    while True:
        number += 1
        try:
            line = text.readline(MAX_RECORD_CHARS + 1)
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"not UTF-8 text ({exc.reason})", number) from exc
        if not line:
            return
        if len(line) > MAX_RECORD_CHARS and not line.endswith("\n"):
            raise UnreadableFile(f"the line is over {MAX_RECORD_CHARS} characters, the most one record may hold", number)
        yield line


class _JsonArray:
    """The records of a file holding one JSON array, decoded element by element from a sliding window of the
    text: memory holds one record (at most MAX_RECORD_CHARS) and a chunk, however long the array."""

    def __init__(self, text: TextIO) -> None:
        self._text = text
        self._decoder = json.JSONDecoder()
        self._window = ""
        self._at = 0  # position in the window
        self._line = 1  # line of the window's start
        self._line_start = 0  # position, relative to the window's start, where that line begins (may be < 0)
        self._ended = False

    def _more(self) -> bool:
        """Read the next chunk into the window, dropping what was read already; False at the file's end."""
        if self._ended:
            return False
        try:
            chunk = self._text.read(_READ_CHARS)
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"not UTF-8 text ({exc.reason})", self.where(len(self._window))[0]) from exc
        if not chunk:
            self._ended = True
            return False
        consumed = self._window[: self._at]
        if (newlines := consumed.count("\n")) > 0:
            self._line += newlines
            self._line_start = consumed.rindex("\n") + 1
        self._line_start -= self._at
        self._window = self._window[self._at :] + chunk
        self._at = 0
        return True

    def where(self, position: int) -> tuple[int, int]:
        """Line and column (1-based) of a position in the window."""
        before = self._window[:position]
        newlines = before.count("\n")
        if newlines:
            return self._line + newlines, position - before.rindex("\n")
        return self._line, position - self._line_start + 1

    def refuse(self, message: str, position: int | None = None) -> UnreadableFile:
        return UnreadableFile(message, *self.where(self._at if position is None else position))

    def next_character(self) -> str:
        """The next character that is not white space ("" at the file's end), left unread."""
        while True:
            while self._at < len(self._window) and self._window[self._at] in " \t\r\n":
                self._at += 1
            if self._at < len(self._window) or not self._more():
                return self._window[self._at : self._at + 1]

    def take(self, character: str) -> None:
        self.next_character()
        self._at += len(character)

    def value(self) -> tuple[object, int, int]:
        """The next JSON value, and the line and column where it starts."""
        self.next_character()
        line, column = self.where(self._at)
        while True:
            try:
                value, end = self._decoder.raw_decode(self._window, self._at)
            except json.JSONDecodeError as exc:
                # Cut by the window's end, or wrong: more text tells, up to the size of one record.
                if len(self._window) - self._at <= MAX_RECORD_CHARS and self._more():
                    continue
                if len(self._window) - self._at > MAX_RECORD_CHARS:
                    raise self.refuse(f"a record is over {MAX_RECORD_CHARS} characters, the most one may hold") from exc
                raise self.refuse(f"not valid JSON: {exc.msg}", exc.pos) from exc
            if end == len(self._window) and self._more():
                continue  # a number cut by the window's end decodes as a shorter one: read on to be sure
            self._at = end
            return value, line, column


def _json_array(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8-sig", newline="") as text:
        array = _JsonArray(text)
        if array.next_character() != "[":
            raise array.refuse("a .json records file holds one array of records: [{...}, {...}]")
        array.take("[")
        first = True
        while (character := array.next_character()) != "]":
            if not character:
                raise array.refuse("the array is never closed (])")
            if not first:
                if character != ",":
                    raise array.refuse("expected , or ] after a record")
                array.take(",")
            value, line, column = array.value()
            yield Record(f"line {line}, column {column}", _object(value, line, column))
            first = False
        array.take("]")
        if array.next_character():
            raise array.refuse("text after the array's end")


# --- CSV and XLSX -------------------------------------------------------------


def _table(rows: Iterator[Row], sheet: SheetRows | None) -> Iterator[Record]:
    """Rows under a header row naming each column: one record per row, keyed by the header's names, every
    column present (an empty cell is an empty text, so a field the template uses is there, empty)."""
    header_line, header = next(rows, (0, []))
    while header and not header[-1]:
        header.pop()  # a CSV's trailing delimiter names no column
    title = sheet.sheet if sheet is not None else None
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if not name and any(header[number:]):
            raise UnreadableFile("a column has no name in the header row", header_line, number, title)
        if name in seen:
            raise UnreadableFile(f"column {name!r} appears twice (also column {seen[name]})", header_line, number, title)
        seen[name] = number
    for line, cells in rows:
        if unnamed := [i for i, text in enumerate(cells[len(header) :], start=len(header) + 1) if text]:
            message = f"a value in a column the header does not name (it names {len(header)} columns)"
            raise UnreadableFile(message, line, unnamed[0], title)
        place = f"sheet {title!r}, row {line}" if title is not None else f"line {line}"
        yield Record(place, {name: cells[i] if i < len(cells) else "" for i, name in enumerate(header)})
