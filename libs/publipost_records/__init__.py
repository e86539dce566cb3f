"""Tables and records read from files people send: CSV and .xlsx rows (rows.py), and merge records from a
JSON array, NDJSON, CSV or .xlsx (records.py), each streamed, each error naming its line and column."""

from .records import KINDS, MAX_RECORD_CHARS, Record, RecordsKind, read_records, records_kind
from .rows import FileKind, Row, SheetRows, UnreadableFile, WorkbookLimits, csv_rows, kind_of, read_rows

__all__ = [
    "KINDS",
    "MAX_RECORD_CHARS",
    "FileKind",
    "Record",
    "RecordsKind",
    "Row",
    "SheetRows",
    "UnreadableFile",
    "WorkbookLimits",
    "csv_rows",
    "kind_of",
    "read_records",
    "read_rows",
    "records_kind",
]
