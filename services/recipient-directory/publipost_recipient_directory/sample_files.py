"""The sample recipient files people download to fill in: CSV and Excel, with comments on the format."""

import codecs
import csv
import io
from collections.abc import Sequence

import openpyxl
from openpyxl.styles import Font

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


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
