"""Spreadsheet files (CSV, the first sheet of an .xlsx) as rows of text cells numbered by their line, read as
a stream: the recipient directory's imports and merge's records files.

Both readers skip blank lines and comments (a line whose first cell starts with
#) and hand out every other line with the number a spreadsheet shows for it.
"""

import codecs
import csv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Literal, TextIO

from openpyxl.cell.cell import ERROR_CODES
from openpyxl.cell.text import Text
from openpyxl.reader.excel import ExcelReader
from openpyxl.utils import get_column_letter
from openpyxl.xml.constants import SHARED_STRINGS, SHEET_MAIN_NS
from openpyxl.xml.functions import iterparse

FileKind = Literal["csv", "xlsx"]
Row = tuple[int, list[str]]


class UnreadableFile(ValueError):
    """The file is not what its name says (not a workbook, not CSV), at `line` (and `column`, 1-based, and the
    workbook's `sheet`) when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None, sheet: str | None = None):
        super().__init__(message)
        self.line = line
        self.column = column
        self.sheet = sheet

    @property
    def place(self) -> str:
        """Where, as a person finds it: "line 4, column 2", or "sheet 'Clients', row 4, column B"."""
        if self.sheet is not None:
            parts = [f"sheet {self.sheet!r}", f"row {self.line}" if self.line else None]
            parts.append(f"column {get_column_letter(self.column)}" if self.column else None)
        else:
            parts = [f"line {self.line}" if self.line else None, f"column {self.column}" if self.column else None]
        return ", ".join(part for part in parts if part)


@dataclass(frozen=True)
class WorkbookLimits:
    """What reading one .xlsx may cost, each refused as soon as reading passes it: the size of its parts once
    decompressed (from the zip's directory, before anything is inflated), the distinct texts it shares
    between cells (all held in memory while the sheet is read), and the cells the sheet is read into."""

    max_uncompressed_bytes: int = 400_000_000
    max_shared_strings: int = 500_000
    max_cells: int = 5_000_000
    what: str = "an import"  # whose limits they are, in the refusal
    setting_prefix: str | None = "PUBLIPOST_MAX_IMPORT"  # the settings that raise them, named in the refusal

    def named(self, limit: str) -> str:
        return f"the limit of {self.what}" + (f" ({self.setting_prefix}_{limit})" if self.setting_prefix else "")


class _OverLimit(Exception):
    """Raised inside openpyxl's reader, which turns any ValueError into one of its own."""


_KINDS: dict[str, FileKind] = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx"}


def kind_of(filename: str | None) -> FileKind | None:
    return _KINDS.get(Path(filename or "").suffix.lower())


def read_rows(path: Path, kind: FileKind, limits: WorkbookLimits | None = None) -> Iterator[Row]:
    return iter(SheetRows(path, limits or WorkbookLimits())) if kind == "xlsx" else csv_rows(path)


def _is_comment(first_cell: str) -> bool:
    return first_cell.lstrip().startswith("#")


# --- CSV ----------------------------------------------------------------------


def _encoding(path: Path) -> str:
    """UTF-8 (a leading BOM dropped) when the bytes are UTF-8; else Windows-1252, what Excel writes as "CSV" in Europe."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"
    return "utf-8-sig"


class _Lines:
    """The lines csv.reader pulls, minus comments and blank lines between records.

    Only between records: inside a quoted field spanning lines, a line starting
    with # is data. `record_start` is the line a record began on.
    """

    def __init__(self, text: TextIO) -> None:
        self._text = text
        self.number = 0
        self.record_start = 0
        self.between_records = True
        self.record_text = ""  # the lines of the record being read, to say where a broken one breaks

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        while True:
            line = next(self._text)
            self.number += 1
            if not self.between_records:
                self.record_text += line
                return line
            if line.strip() and not _is_comment(line):
                self.record_start = self.number
                self.between_records = False
                self.record_text = line
                return line


def _delimiter(path: Path, encoding: str) -> str:
    """`;` or `,` (or tab), sniffed on the header line: column names never contain them."""
    with path.open(newline="", encoding=encoding) as text:
        header = next((line for line in text if line.strip() and not _is_comment(line)), "")
    try:
        return csv.Sniffer().sniff(header, delimiters=";,\t").delimiter
    except csv.Error:
        return ","  # a single column: any delimiter reads it


def csv_rows(path: Path) -> Iterator[Row]:
    encoding = _encoding(path)
    delimiter = _delimiter(path, encoding)
    with path.open(newline="", encoding=encoding) as text:
        lines = _Lines(text)
        try:
            # strict: a quote never closed is an error, not the rest of the file swallowed into one cell
            for cells in csv.reader(lines, delimiter=delimiter, strict=True):
                lines.between_records = True
                cells = [cell.strip() for cell in cells]
                if any(cells):  # spreadsheets export their formatted empty rows as ";;;;"
                    yield lines.record_start, cells
        except csv.Error as exc:
            column = _quote_column(lines.record_text, delimiter)
            if not lines.between_records and "unexpected end of data" in str(exc):
                message = "a quoted field opened on this line is never closed"
                raise UnreadableFile(message, lines.record_start, column) from exc
            raise UnreadableFile(f"not readable as CSV: {exc}", lines.number, column) from exc


def _quote_column(record: str, delimiter: str) -> int | None:
    """The column (1-based) of the field whose quotes break the record: the one quoted and never closed, or
    the one with text after its closing quote. None when no quote is to blame (csv's other errors)."""
    column, quoted, closed, opened_at = 1, False, False, None
    at = 0
    while at < len(record):
        character = record[at]
        if quoted:
            if character == '"' and record[at + 1 : at + 2] == '"':
                at += 1  # an escaped quote
            elif character == '"':
                quoted, closed = False, True
        elif character == delimiter:
            column, closed = column + 1, False
        elif character == '"' and not closed:
            quoted, opened_at = True, column
        elif closed and character not in "\r\n":
            return column
        at += 1
    return opened_at if quoted else None


# --- XLSX ---------------------------------------------------------------------


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a customer number typed as a number reads 1042, not 1042.0
    return str(value).strip()


class SheetRows:
    """The first sheet of a workbook, streamed (read-only mode keeps one row in memory, not the workbook);
    `sheet` is its name once reading has begun. A cell holding a formula's error (#DIV/0!, #REF!...) makes
    the file unreadable at that cell: its value is not known (read as values, a text typed as #N/A is taken
    for that error too)."""

    def __init__(self, path: Path, limits: WorkbookLimits) -> None:
        self.path = path
        self.limits = limits
        self.sheet: str | None = None

    def __iter__(self) -> Iterator[Row]:
        limits = self.limits
        try:
            _check_uncompressed_size(self.path, limits)
            reader = _LimitedReader(self.path, limits)
            reader.read()
            workbook = reader.wb
        except _OverLimit as exc:
            raise UnreadableFile(str(exc)) from exc
        except Exception as exc:  # whatever a crafted file makes openpyxl throw, the file is at fault
            raise UnreadableFile("not an Excel workbook (.xlsx)") from exc
        cells_read = 0
        try:
            sheet = workbook.worksheets[0]
            self.sheet = sheet.title
            sheet.reset_dimensions()  # some writers record a wrong size; read to the last row instead
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                cells_read += len(values)  # the empty cells before a filled one count: they are read too
                if cells_read > limits.max_cells:
                    message = f"the sheet holds more than {limits.max_cells} cells, {limits.named('CELLS')}; split the file"
                    raise UnreadableFile(message, number)
                cells = [_cell_text(v) for v in values]
                while cells and not cells[-1]:
                    cells.pop()
                if cells and not _is_comment(cells[0]):
                    if (error := next((i for i, text in enumerate(cells) if text in ERROR_CODES), None)) is not None:
                        message = f"the cell holds the error {cells[error]} of its formula, not a value"
                        raise UnreadableFile(message, number, error + 1, self.sheet)
                    yield number, cells
        finally:
            workbook.close()


def _check_uncompressed_size(path: Path, limits: WorkbookLimits) -> None:
    """From the zip's directory: zipfile never inflates an entry past the size declared there (the CRC check
    fails), so the declared sizes bound what reading the workbook can cost."""
    with zipfile.ZipFile(path) as archive:
        total = sum(entry.file_size for entry in archive.infolist())
    if total > limits.max_uncompressed_bytes:
        raise _OverLimit(
            f"the workbook is {total} bytes once decompressed, over the {limits.max_uncompressed_bytes}-byte "
            f"{limits.named('UNCOMPRESSED_BYTES').removeprefix('the ')}"
        )


class _LimitedReader(ExcelReader):
    """openpyxl's reader (read-only, values only) whose table of shared strings stops at `max_shared_strings`:
    openpyxl reads the whole table into memory before the first row, so it is counted as it is read."""

    def __init__(self, path: Path, limits: WorkbookLimits) -> None:
        super().__init__(path, read_only=True, data_only=True)
        self.limits = limits

    def read_strings(self) -> None:
        part = self.package.find(SHARED_STRINGS)
        if part is None:
            return
        with self.archive.open(part.PartName[1:]) as source:
            self.shared_strings = _shared_strings(source, self.limits)


_SHARED_STRING = f"{{{SHEET_MAIN_NS}}}si"


def _shared_strings(source: IO[bytes], limits: WorkbookLimits) -> list[str]:
    """openpyxl's read_string_table, counting."""
    strings: list[str] = []
    for _, node in iterparse(source):
        if node.tag == _SHARED_STRING:
            if len(strings) == limits.max_shared_strings:
                raise _OverLimit(
                    f"the workbook holds more than {limits.max_shared_strings} shared strings (distinct cell "
                    f"texts), {limits.named('SHARED_STRINGS')}; split the file"
                )
            strings.append(Text.from_tree(node).content.replace("x005F_", ""))
            node.clear()
    return strings
