"""Merge records read from the files people upload (a JSON array, NDJSON, CSV, .xlsx): one record at a time,
each error naming its line and column (sheet, row and column in a workbook)."""

import codecs
import json
from datetime import date

import openpyxl
import pytest
from publipost_records import UnreadableFile, read_records, records_kind
from publipost_records.records import MAX_RECORD_CHARS


def records(path, kind):
    return [(record.place, record.data) for record in read_records(path, kind)]


def refusal(path, kind) -> tuple[str, str]:
    with pytest.raises(UnreadableFile) as refused:
        list(read_records(path, kind))
    return refused.value.place, str(refused.value)


@pytest.mark.parametrize(
    ("name", "kind"), [("a.json", "json"), ("a.NDJSON", "ndjson"), ("a.jsonl", "ndjson"), ("a.csv", "csv"), ("a.xlsx", "xlsx")]
)
def test_the_kind_of_a_records_file_is_its_extension(name, kind):
    assert records_kind(name) == kind


def test_a_file_of_another_kind_is_refused_naming_the_kinds_there_are():
    with pytest.raises(UnreadableFile, match=r"^\.pdf is not a records file; send \.json, \.ndjson, \.csv or \.xlsx$"):
        records_kind("letters.pdf")


def test_a_json_array_reads_record_by_record_with_where_each_starts(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('[\n  {"id": "r1", "name": "Zoé"},\n  {"id": "r2", "amount": 1.5e3}\n]\n')

    assert records(path, "json") == [
        ("line 2, column 3", {"id": "r1", "name": "Zoé"}),
        ("line 3, column 3", {"id": "r2", "amount": 1500.0}),
    ]


def test_a_json_array_longer_than_the_read_window_reads_whole(tmp_path):
    path = tmp_path / "r.json"
    many = [{"id": f"r{n}", "text": "x" * (n % 300), "amount": 1234567890 + n} for n in range(3000)]
    path.write_text(json.dumps(many))

    assert [data for _, data in records(path, "json")] == many


@pytest.mark.parametrize(
    ("text", "place", "words"),
    [
        ('{"id": "r1"}', "line 1, column 1", "holds one array of records"),
        ('[\n {"id": "r1"},\n {"id": "r2" "x": 1}\n]', "line 3, column 14", "not valid JSON: Expecting ',' delimiter"),
        ('[\n {"id": "r1"}\n {"id": "r2"}\n]', "line 3, column 2", "expected , or ] after a record"),
        ('[{"id": "r1"}, 7]', "line 1, column 16", "a record must be a JSON object, not int"),
        ('[{"id": "r1"}', "line 1, column 14", "the array is never closed"),
        ('[{"id": "r1"}] []', "line 1, column 16", "text after the array's end"),
    ],
)
def test_a_json_file_that_cannot_be_read_names_the_line_and_column(tmp_path, text, place, words):
    path = tmp_path / "r.json"
    path.write_text(text)

    assert refusal(path, "json")[0] == place
    assert words in refusal(path, "json")[1]


def test_an_error_far_into_a_json_array_names_its_line(tmp_path):
    path = tmp_path / "r.json"
    lines = [json.dumps({"id": f"r{n}", "text": "y" * 100}) for n in range(2000)]
    lines[1500] = '{"id": "r1500", "text": tru}'
    path.write_text("[\n" + ",\n".join(lines) + "\n]")

    assert refusal(path, "json") == ("line 1502, column 25", "not valid JSON: Expecting value")


def test_a_record_over_the_limit_is_refused_without_reading_the_rest(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('[{"id": "r1", "text": "' + "z" * (MAX_RECORD_CHARS + 10))

    assert refusal(path, "json") == ("line 1, column 2", f"a record is over {MAX_RECORD_CHARS} characters, the most one may hold")


def test_ndjson_reads_one_record_a_line_skipping_blank_lines(tmp_path):
    path = tmp_path / "r.ndjson"
    path.write_bytes(codecs.BOM_UTF8 + '{"id": "r1", "city": "Orléans"}\n\n{"id": "r2"}'.encode())

    assert records(path, "ndjson") == [("line 1", {"id": "r1", "city": "Orléans"}), ("line 3", {"id": "r2"})]


@pytest.mark.parametrize(
    ("text", "place", "message"),
    [
        ('{"id": "r1"}\n{"id": "r2",}\n', "line 2, column 13", "not valid JSON: Expecting property name enclosed in double quotes"),
        ('{"id": "r1"}\n["r2"]\n', "line 2", "a record must be a JSON object, not list"),
    ],
)
def test_an_ndjson_line_that_cannot_be_read_names_the_line_and_column(tmp_path, text, place, message):
    path = tmp_path / "r.ndjson"
    path.write_text(text)

    assert refusal(path, "ndjson") == (place, message)


def test_ndjson_that_is_not_utf8_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "r.ndjson"
    path.write_bytes('{"id": "r1"}\n{"name": "Lefèvre"}\n'.encode("cp1252"))

    place, message = refusal(path, "ndjson")
    assert place.startswith("line ") and message.startswith("not UTF-8 text")


@pytest.mark.parametrize("bom", [b"", codecs.BOM_UTF8])
def test_a_csv_with_semicolons_and_accents_reads_one_record_a_row(tmp_path, bom):
    path = tmp_path / "r.csv"
    path.write_bytes(bom + "id;name;city;\nr1;Zoé Lefèvre;Orléans;\n# a comment\nr2;\"Dupont; fils\";\n".encode())

    assert records(path, "csv") == [
        ("line 2", {"id": "r1", "name": "Zoé Lefèvre", "city": "Orléans"}),
        ("line 4", {"id": "r2", "name": "Dupont; fils", "city": ""}),
    ]


def test_a_column_of_numbers_reads_as_numbers_and_codes_stay_text(tmp_path):
    """As a JSON record carries them, so `{% if amount_due > 500 %}` holds for a CSV too; what only looks
    like a number (a postal code with its leading zero, a customer number, a mixed column) stays text."""
    path = tmp_path / "r.csv"
    path.write_text(
        "id;customer_number;postal_code;amount_due;rate;branch;reference\n"
        "1;1042;01000;600;5,5;12;A-1\n"
        "2;1043;75002;;20;Lyon;17\n",
        encoding="utf-8",
    )
    assert [data for _, data in records(path, "csv")] == [
        {"id": "1", "customer_number": "1042", "postal_code": "01000", "amount_due": 600, "rate": 5.5,
         "branch": "12", "reference": "A-1"},
        {"id": "2", "customer_number": "1043", "postal_code": "75002", "amount_due": "", "rate": 20,
         "branch": "Lyon", "reference": "17"},
    ]  # fmt: skip


def test_a_csv_with_commas_reads_too(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('id,name\nr1,"Martin, Paul"\n')

    assert records(path, "csv") == [("line 2", {"id": "r1", "name": "Martin, Paul"})]


@pytest.mark.parametrize(
    ("text", "place", "words"),
    [
        ('id;name;city\nr1;Ann;Paris\nr2;"Bob" Jr;Lyon\n', "line 3, column 2", "not readable as CSV"),
        ('id;name;city\nr1;Ann;"Paris\n', "line 2, column 3", "a quoted field opened on this line is never closed"),
        ("id;name\nr1;Ann;extra\n", "line 2, column 3", "a value in a column the header does not name"),
        ("id;;name\nr1;x;Ann\n", "line 1, column 2", "a column has no name"),
        ("id;name;id\n", "line 1, column 3", "column 'id' appears twice (also column 1)"),
    ],
)
def test_a_csv_line_that_cannot_be_read_names_the_line_and_column(tmp_path, text, place, words):
    path = tmp_path / "r.csv"
    path.write_text(text)

    found_place, message = refusal(path, "csv")
    assert found_place == place and words in message


def workbook(tmp_path, *rows, title="Clients"):
    book = openpyxl.Workbook()
    book.active.title = title
    for row in rows:
        book.active.append(row)
    book.save(tmp_path / "r.xlsx")
    return tmp_path / "r.xlsx"


def test_an_xlsx_reads_its_first_sheet_one_record_a_row(tmp_path):
    path = workbook(tmp_path, ["id", "name", "amount", "due"], ["r1", "Zoé", 120, date(2024, 5, 6)], ["r2", None, 3.5])

    assert records(path, "xlsx") == [
        ("sheet 'Clients', row 2", {"id": "r1", "name": "Zoé", "amount": 120, "due": "2024-05-06"}),
        ("sheet 'Clients', row 3", {"id": "r2", "name": "", "amount": 3.5, "due": ""}),
    ]


def test_an_xlsx_cell_holding_an_error_is_refused_naming_sheet_row_and_column(tmp_path):
    path = workbook(tmp_path, ["id", "name", "amount"], ["r1", "Ann", 10], ["r2", "Bob", "#DIV/0!"])

    assert refusal(path, "xlsx") == (
        "sheet 'Clients', row 3, column C",
        "the cell holds the error #DIV/0! of its formula, not a value",
    )


def test_an_xlsx_value_outside_the_named_columns_is_refused_naming_its_cell(tmp_path):
    path = workbook(tmp_path, ["id", "name"], ["r1", "Ann", None, "stray"])

    assert refusal(path, "xlsx")[0] == "sheet 'Clients', row 2, column D"


def test_a_file_named_xlsx_that_is_not_a_workbook_is_refused(tmp_path):
    (tmp_path / "r.xlsx").write_text("id\nr1\n")

    assert refusal(tmp_path / "r.xlsx", "xlsx") == ("", "not an Excel workbook (.xlsx)")
