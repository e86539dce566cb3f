"""Reading recipient files: rows numbered as a spreadsheet shows them, comments and blank lines skipped."""

import codecs
import csv
from datetime import date, datetime

import openpyxl
import pytest
from publipost_recipient_directory.importing import ImportRefused, check_file, sample_csv, sample_xlsx
from publipost_records import UnreadableFile, kind_of, read_rows

TYPES = ["invoice", "quote"]


def test_a_csv_reads_with_its_quotes_and_line_numbers_skipping_comments_and_empty_rows(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(
        codecs.BOM_UTF8
        + b'# comment; with "a quote\n\na;b;c\n1;"two\n# not a comment: inside quotes";3\n  # indented comment\n4;"5;6";\n;;\n'
    )

    assert list(read_rows(path, "csv")) == [
        (3, ["a", "b", "c"]),
        (4, ["1", "two\n# not a comment: inside quotes", "3"]),
        (7, ["4", "5;6", ""]),
    ]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_the_delimiter_is_sniffed_on_the_header(tmp_path, delimiter):
    path = tmp_path / "r.csv"
    with path.open("w", newline="") as f:
        csv.writer(f, delimiter=delimiter).writerows([["customer_number", "name"], ["C1", "A, B; C"]])

    assert list(read_rows(path, "csv")) == [(1, ["customer_number", "name"]), (2, ["C1", "A, B; C"])]


def test_windows_1252_text_is_read_when_the_file_is_not_utf8(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("name\nLefèvre\n".encode("cp1252"))

    assert list(read_rows(path, "csv")) == [(1, ["name"]), (2, ["Lefèvre"])]


def test_an_xlsx_reads_as_text_cells_at_their_row_numbers(tmp_path):
    book = openpyxl.Workbook()
    for row in (["# comment"], ["a", "b", "c", "d"], [], [1042, 3.5, datetime(2024, 5, 6), True], [None, "x", None]):
        book.active.append(row)
    book.save(tmp_path / "r.xlsx")

    assert list(read_rows(tmp_path / "r.xlsx", "xlsx")) == [
        (2, ["a", "b", "c", "d"]),
        (4, ["1042", "3.5", date(2024, 5, 6).isoformat(), "yes"]),
        (5, ["", "x"]),
    ]


def test_a_file_that_is_not_a_workbook_is_unreadable(tmp_path):
    (tmp_path / "r.xlsx").write_text("customer_number\n")

    with pytest.raises(UnreadableFile, match="not an Excel workbook"):
        list(read_rows(tmp_path / "r.xlsx", "xlsx"))


def test_the_kind_of_file_comes_from_its_name():
    assert [kind_of(n) for n in ("a.CSV", "a.txt", "a.xlsx", "a.xls", "a", None)] == [
        "csv",
        "csv",
        "xlsx",
        None,
        None,
        None,
    ]


def test_every_problem_is_counted_and_the_listing_is_capped(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("customer_number,document_type,email\n" + "".join(f"C{n},invoice,bad{n}\n" for n in range(50)))

    with pytest.raises(ImportRefused) as refused:
        check_file(read_rows(path, "csv"), TYPES, listed=10)

    assert refused.value.count == 50
    assert [p.line for p in refused.value.problems] == list(range(2, 12))


def test_duplicate_and_unknown_columns_are_problems_of_the_header_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("# c\ncustomer_number,document_type,Email,email,attr.a b,contact_1_name\nC1,invoice,,,,\n")

    with pytest.raises(ImportRefused) as refused:
        check_file(read_rows(path, "csv"), TYPES)

    assert [(p.line, p.column, p.column_number) for p in refused.value.problems] == [
        (2, "email", 4),
        (2, "attr.a b", 5),
        (2, "contact_1_email", None),
    ]


def test_a_contact_needs_an_e_mail(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("customer_number,document_type,contact_1_name,contact_1_email\nC1,invoice,Ann,\nC2,invoice,,\n")

    with pytest.raises(ImportRefused) as refused:
        check_file(read_rows(path, "csv"), TYPES)

    assert [(p.line, p.column, p.message) for p in refused.value.problems] == [
        (2, "contact_1_email", "contact 1 has a name or correspondence types but no e-mail")
    ]


@pytest.mark.parametrize(("name", "make"), [("sample.csv", sample_csv), ("sample.xlsx", sample_xlsx)])
def test_the_sample_files_pass_the_check_with_the_first_document_type(tmp_path, name, make):
    path = tmp_path / name
    path.write_bytes(make(["quote", "invoice"]))

    assert check_file(read_rows(path, kind_of(name)), ["quote", "invoice"]) == ("quote", 2)


def test_a_quote_never_closed_is_reported_where_it_opens_not_swallowing_the_file(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('customer_number;document_type;name\nC1;invoice;"Dupont\nC2;invoice;Martin\n')

    with pytest.raises(ImportRefused) as refused:
        check_file(read_rows(path, "csv"), TYPES)

    assert [(p.line, p.message) for p in refused.value.problems] == [
        (2, "a quoted field opened on this line is never closed")
    ]


def test_an_invoice_recipient_may_ask_for_factur_x_or_ubl_and_an_unknown_format_names_the_known_ones(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("customer_number,document_type,email,format\nC1,invoice,a@x.fr,facturx\nC2,invoice,b@x.fr,UBL\n")
    assert check_file(read_rows(good, "csv"), TYPES) == ("invoice", 2)

    bad = tmp_path / "bad.csv"
    bad.write_text("customer_number,document_type,email,format\nC1,invoice,a@x.fr,zugferd\n")
    with pytest.raises(ImportRefused) as refused:
        check_file(read_rows(bad, "csv"), TYPES)
    assert [(p.line, p.column, p.message) for p in refused.value.problems] == [
        (2, "format", "'zugferd' is not a format (pdf, docx, facturx, ubl)")
    ]
