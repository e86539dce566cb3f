"""Recipient files as rows of text cells numbered by their line, read as a stream.

Both readers skip blank lines and comments (a line whose first cell starts with
#) and hand out every other line with the number a spreadsheet shows for it.
"""

import codecs
import csv
import io
import zipfile
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Literal, TextIO

import openpyxl
from openpyxl.styles import Font
from openpyxl.utils.exceptions import InvalidFileException

FileKind = Literal["csv", "xlsx"]
Row = tuple[int, list[str]]
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class UnreadableFile(ValueError):
    """The file is not what its name says (not a workbook, not CSV), at `line` when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


_KINDS: dict[str, FileKind] = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx"}


def kind_of(filename: str | None) -> FileKind | None:
    return _KINDS.get(Path(filename or "").suffix.lower())


def read_rows(path: Path, kind: FileKind) -> Iterator[Row]:
    return _xlsx_rows(path) if kind == "xlsx" else _csv_rows(path)


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


def _xlsx_rows(path: Path) -> Iterator[Row]:
    """The first sheet, streamed (read-only mode keeps one row in memory, not the workbook)."""
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as exc:
        raise UnreadableFile("not an Excel workbook (.xlsx)") from exc
    try:
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # some writers record a wrong size; read to the last row instead
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell_text(v) for v in values]
            while cells and not cells[-1]:
                cells.pop()
            if cells and not _is_comment(cells[0]):
                yield number, cells
    finally:
        workbook.close()


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
