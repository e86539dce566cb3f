"""Recipient files as rows of text cells numbered by their line, read as a stream.

Both readers skip blank lines and comments (a line whose first cell starts with
#) and hand out every other line with the number a spreadsheet shows for it.
"""

import codecs
import csv
import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Literal, TextIO

import openpyxl
from openpyxl.cell.text import Text
from openpyxl.reader.excel import ExcelReader
from openpyxl.styles import Font
from openpyxl.xml.constants import SHARED_STRINGS, SHEET_MAIN_NS
from openpyxl.xml.functions import iterparse

FileKind = Literal["csv", "xlsx"]
Row = tuple[int, list[str]]
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class UnreadableFile(ValueError):
    """The file is not what its name says (not a workbook, not CSV), at `line` when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class WorkbookLimits:
    """What reading one .xlsx may cost, each refused as soon as reading passes it: the size of its parts once
    decompressed (from the zip's directory, before anything is inflated), the distinct texts it shares
    between cells (all held in memory while the sheet is read), and the cells the sheet is read into."""

    max_uncompressed_bytes: int = 400_000_000
    max_shared_strings: int = 500_000
    max_cells: int = 5_000_000


class _OverLimit(Exception):
    """Raised inside openpyxl's reader, which turns any ValueError into one of its own."""


_KINDS: dict[str, FileKind] = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx"}


def kind_of(filename: str | None) -> FileKind | None:
    return _KINDS.get(Path(filename or "").suffix.lower())


def read_rows(path: Path, kind: FileKind, limits: WorkbookLimits | None = None) -> Iterator[Row]:
    return _xlsx_rows(path, limits or WorkbookLimits()) if kind == "xlsx" else _csv_rows(path)


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

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        while True:
            line = next(self._text)
            self.number += 1
            if not self.between_records:
                return line
            if line.strip() and not _is_comment(line):
                self.record_start = self.number
                self.between_records = False
                return line


def _delimiter(path: Path, encoding: str) -> str:
    """`;` or `,` (or tab), sniffed on the header line: column names never contain them."""
    with path.open(newline="", encoding=encoding) as text:
        header = next((line for line in text if line.strip() and not _is_comment(line)), "")
    try:
        return csv.Sniffer().sniff(header, delimiters=";,\t").delimiter
    except csv.Error:
        return ","  # a single column: any delimiter reads it


def _csv_rows(path: Path) -> Iterator[Row]:
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
            if not lines.between_records and "unexpected end of data" in str(exc):
                raise UnreadableFile("a quoted field opened on this line is never closed", lines.record_start) from exc
            raise UnreadableFile(f"not readable as CSV: {exc}", lines.number) from exc


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


def _xlsx_rows(path: Path, limits: WorkbookLimits) -> Iterator[Row]:
    """The first sheet, streamed (read-only mode keeps one row in memory, not the workbook)."""
    try:
        _check_uncompressed_size(path, limits.max_uncompressed_bytes)
        reader = _LimitedReader(path, limits.max_shared_strings)
        reader.read()
        workbook = reader.wb
    except _OverLimit as exc:
        raise UnreadableFile(str(exc)) from exc
    except Exception as exc:  # whatever a crafted file makes openpyxl throw, the file is at fault
        raise UnreadableFile("not an Excel workbook (.xlsx)") from exc
    cells_read = 0
    try:
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # some writers record a wrong size; read to the last row instead
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells_read += len(values)  # the empty cells before a filled one count: they are read too
            if cells_read > limits.max_cells:
                raise UnreadableFile(
                    f"the sheet holds more than {limits.max_cells} cells, the limit of an import "
                    "(PUBLIPOST_MAX_IMPORT_CELLS); split the file",
                    number,
                )
            cells = [_cell_text(v) for v in values]
            while cells and not cells[-1]:
                cells.pop()
            if cells and not _is_comment(cells[0]):
                yield number, cells
    finally:
        workbook.close()


def _check_uncompressed_size(path: Path, limit: int) -> None:
    """From the zip's directory: zipfile never inflates an entry past the size declared there (the CRC check
    fails), so the declared sizes bound what reading the workbook can cost."""
    with zipfile.ZipFile(path) as archive:
        total = sum(entry.file_size for entry in archive.infolist())
    if total > limit:
        raise _OverLimit(
            f"the workbook is {total} bytes once decompressed, over the {limit}-byte limit of an import "
            "(PUBLIPOST_MAX_IMPORT_UNCOMPRESSED_BYTES)"
        )


class _LimitedReader(ExcelReader):
    """openpyxl's reader (read-only, values only) whose table of shared strings stops at `max_shared_strings`:
    openpyxl reads the whole table into memory before the first row, so it is counted as it is read."""

    def __init__(self, path: Path, max_shared_strings: int) -> None:
        super().__init__(path, read_only=True, data_only=True)
        self.max_shared_strings = max_shared_strings

    def read_strings(self) -> None:
        part = self.package.find(SHARED_STRINGS)
        if part is None:
            return
        with self.archive.open(part.PartName[1:]) as source:
            self.shared_strings = _shared_strings(source, self.max_shared_strings)


_SHARED_STRING = f"{{{SHEET_MAIN_NS}}}si"


def _shared_strings(source: IO[bytes], limit: int) -> list[str]:
    """openpyxl's read_string_table, counting."""
    strings: list[str] = []
    for _, node in iterparse(source):
        if node.tag == _SHARED_STRING:
            if len(strings) == limit:
                raise _OverLimit(
                    f"the workbook holds more than {limit} shared strings (distinct cell texts), the limit of an "
                    "import (PUBLIPOST_MAX_IMPORT_SHARED_STRINGS); split the file"
                )
            strings.append(Text.from_tree(node).content.replace("x005F_", ""))
            node.clear()
    return strings


# --- writing (the sample files) -----------------------------------------------


def csv_bytes(comments: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    """`;`-separated UTF-8 with a BOM: what a European Excel opens as columns, accents intact."""
    buffer = io.StringIO(newline="")
    for comment in comments:
        buffer.write(f"# {comment}\r\n")
    csv.writer(buffer, delimiter=";").writerows(rows)
    return codecs.BOM_UTF8 + buffer.getvalue().encode()


def xlsx_bytes(comments: Sequence[str], rows: Sequence[Sequence[str]], text_columns: Sequence[int]) -> bytes:
    """A workbook whose `text_columns` (0-based) are formatted as text, so 01000 keeps its leading zero."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "recipients"
    for comment in comments:
        sheet.append([f"# {comment}"])
    header, *data = rows
    sheet.append(list(header))
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for row in data:
        sheet.append(list(row))
    for column in text_columns:
        for (cell,) in sheet.iter_rows(min_row=len(comments) + 2, min_col=column + 1, max_col=column + 1):
            cell.number_format = "@"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
