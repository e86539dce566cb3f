"""Importing recipient files (.csv, .xlsx) into the directory, against the real database."""

import codecs
import io
import zipfile
from datetime import datetime

import httpx
import openpyxl
import pytest
from publipost_recipient_directory.app import build
from publipost_recipient_directory.settings import RecipientDirectorySettings

from tests.credentials import credentials

ACME = credentials("acme")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
async def directory(make_settings, running):
    service = await running(build(make_settings(RecipientDirectorySettings, import_batch_size=7)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://d") as http:
        yield http


async def upload(http: httpx.AsyncClient, name: str, content: bytes | str, tenant=ACME) -> httpx.Response:
    data = content.encode() if isinstance(content, str) else content
    return await http.post("/recipients/import", headers=tenant, files={"file": (name, data)})


def workbook(*rows: list[object]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def recipient(http: httpx.AsyncClient, customer_number: str) -> dict:
    response = await http.get(f"/recipients/{customer_number}", headers=ACME)
    assert response.status_code == 200, response.text
    return response.json()


async def all_customer_numbers(http: httpx.AsyncClient) -> list[str]:
    page = (await http.get("/recipients", headers=ACME, params={"limit": 500})).json()
    return [r["customer_number"] for r in page["items"]]


async def test_a_csv_with_bom_comments_semicolons_and_quoted_fields_is_imported(directory):
    content = (
        codecs.BOM_UTF8
        + (
            "# Recipients of the March invoices\n"
            "customer_number;document_type;name;email;cc;postal_address;country;promotional_consent;last_visit_date\n"
            'C001;invoice;Dupont SARL;Compta@Dupont.EXAMPLE;"a@dupont.example; b@dupont.example";"12 rue de la Paix\n'
            '# Bâtiment B";fr;oui;31/03/2024\n'
            "\n"
            "# a comment between two recipients\n"
            'C002;invoice;"Martin; Émilie";emilie@example.org;;;BE;no;2023-01-15\n'
        ).encode()
    )

    response = await upload(directory, "march.csv", content)

    assert response.status_code == 200, response.text
    assert response.json() == {"document_type": "invoice", "rows": 2, "created": 2, "updated": 0}
    dupont = await recipient(directory, "C001")
    assert dupont["email"] == "Compta@dupont.example"
    assert dupont["cc"] == ["a@dupont.example", "b@dupont.example"]
    assert dupont["postal_address"] == "12 rue de la Paix\n# Bâtiment B"
    assert (dupont["country"], dupont["promotional_consent"], dupont["last_visit_date"]) == ("FR", True, "2024-03-31")
    martin = await recipient(directory, "C002")
    assert (martin["name"], martin["country"], martin["format"]) == ("Martin; Émilie", "BE", None)


async def test_a_comma_separated_csv_saved_by_a_european_excel_in_windows_1252_is_imported(directory):
    content = "customer_number,document_type,name,locality\r\nC010,invoice,Zoé Lefèvre,Besançon\r\n".encode("cp1252")

    response = await upload(directory, "export.csv", content)

    assert response.status_code == 200, response.text
    assert (await recipient(directory, "C010"))["locality"] == "Besançon"


async def test_reimporting_updates_the_columns_in_the_file_and_leaves_the_others(directory):
    await directory.put(
        "/recipients/C001",
        headers=ACME,
        json={"email": "old@example.test", "phone": "01 23 45 67 89", "attributes": {"sector": "retail"}},
    )
    rows = "\n".join(f"C{n:03d},invoice,new{n}@example.test" for n in range(1, 21))

    response = await upload(directory, "update.csv", f"customer_number,document_type,email\n{rows}\n")

    assert response.json() == {"document_type": "invoice", "rows": 20, "created": 19, "updated": 1}
    first = await recipient(directory, "C001")
    assert (first["email"], first["phone"], first["attributes"]) == (
        "new1@example.test",
        "01 23 45 67 89",
        {"sector": "retail"},
    )
    assert len(await all_customer_numbers(directory)) == 20

    again = await upload(directory, "update.csv", f"customer_number,document_type,email\n{rows}\n")
    assert again.json() == {"document_type": "invoice", "rows": 20, "created": 0, "updated": 20}


async def test_an_xlsx_written_by_excel_with_numbers_dates_contacts_and_custom_attributes_is_imported(directory):
    content = workbook(
        ["# One line per customer"],
        [
            "Customer number",
            "Document type",
            "Email",
            "Postal code",
            "Last visit date",
            "Contact_1_Name",
            "contact_1_email",
            "contact_1_correspondence_types",
            "contact_2_email",
            "contact_2_correspondence_types",
            "attr.Sector",
        ],
        [
            1042,
            "Invoice",
            "a@example.test",
            75002,
            datetime(2024, 5, 6),
            "Ann",
            "ann@example.test",
            "Reminder, due_notice",
        ],
        [],
        [1043, "invoice", None, None, None, None, None, None, "bob@example.test", "reminder", "retail"],
    )

    response = await upload(directory, "recipients.xlsx", content)

    assert response.status_code == 200, response.text
    assert response.json() == {"document_type": "invoice", "rows": 2, "created": 2, "updated": 0}
    first = await recipient(directory, "1042")
    assert (first["postal_code"], first["last_visit_date"]) == ("75002", "2024-05-06")
    assert first["contacts"] == [
        {"name": "Ann", "email": "ann@example.test", "correspondence_types": ["reminder", "due_notice"]}
    ]
    second = await recipient(directory, "1043")
    assert second["email"] is None
    assert second["contacts"] == [{"name": None, "email": "bob@example.test", "correspondence_types": ["reminder"]}]
    assert second["attributes"] == {"Sector": "retail"}


async def test_a_file_with_errors_is_refused_whole_with_every_error_by_line_and_column(directory):
    await directory.put("/recipients/C001", headers=ACME, json={"email": "kept@example.test"})
    content = (
        "# bad file\n"
        "customer_number;document_type;email;country\n"
        "C001;invoice;changed@example.test;FR\n"
        "C002;invoice;not-an-address;FR\n"
        "C003;invoce;c3@example.test;France\n"
        "C001;invoice;again@example.test;FR\n"
        "C004;letter;c4@example.test;FR\n"
        ";invoice;c5@example.test;FR\n"
    )

    response = await upload(directory, "bad.csv", content)

    assert response.status_code == 422
    body = response.json()
    assert body["error_count"] == 6
    assert "nothing was stored" in body["message"]
    where = [(p["line"], p["column"], p["column_number"]) for p in body["detail"]]
    assert where == [
        (4, "email", 3),
        (5, "document_type", 2),
        (5, "country", 4),
        (6, "customer_number", 1),
        (7, "document_type", 2),
        (8, "customer_number", 1),
    ]
    messages = [p["msg"] for p in body["detail"]]
    assert "'not-an-address' is not a valid e-mail address" in messages[0]
    assert "unknown document type 'invoce'" in messages[1]
    assert "'France' is not a two-letter country code" in messages[2]
    assert messages[3] == "customer number C001 is already on line 3"
    assert "one document type per file" in messages[4] and "'invoice' (line 3)" in messages[4]
    assert messages[5] == "the customer number is missing"
    assert await all_customer_numbers(directory) == ["C001"]
    assert (await recipient(directory, "C001"))["email"] == "kept@example.test"


async def test_a_missing_required_column_or_an_unknown_column_is_named(directory):
    response = await upload(directory, "cols.xlsx", workbook(["customer_number", "emial"], ["C1", "a@example.test"]))

    assert response.status_code == 422
    problems = [(p["line"], p["column"], p["msg"]) for p in response.json()["detail"]]
    assert (1, "emial", "unknown column 'emial'; columns are described in the sample file") in problems
    assert (1, "document_type", "the required column 'document_type' is missing") in problems
    assert await all_customer_numbers(directory) == []


async def test_a_bad_xlsx_cell_is_reported_at_its_spreadsheet_line(directory):
    content = workbook(
        ["# comment"],
        [],
        ["customer_number", "document_type", "email", "last_visit_date", "promotional_consent"],
        ["C1", "invoice", "a@example.test", "yesterday", "maybe"],
    )

    response = await upload(directory, "dates.xlsx", content)

    assert response.status_code == 422
    assert [(p["line"], p["column"], p["column_number"]) for p in response.json()["detail"]] == [
        (4, "last_visit_date", 4),
        (4, "promotional_consent", 5),
    ]


async def test_files_that_are_not_recipient_files_are_refused(directory):
    wrong_name = await upload(directory, "recipients.pdf", "%PDF-1.4")
    fake_workbook = await upload(directory, "recipients.xlsx", "customer_number,document_type\n")
    no_rows = await upload(directory, "empty.csv", "# nothing but a comment\ncustomer_number;document_type\n")

    assert wrong_name.status_code == 422
    assert wrong_name.json()["detail"][0]["loc"] == ["body", "file"]
    assert fake_workbook.status_code == 422
    assert fake_workbook.json()["detail"][0]["msg"] == "not an Excel workbook (.xlsx)"
    assert no_rows.status_code == 422
    assert no_rows.json()["detail"][0]["msg"] == "the file holds no recipients"


async def test_a_quote_never_closed_refuses_the_file_at_the_line_it_opens(directory):
    response = await upload(
        directory, "r.csv", 'customer_number,document_type,name\nC1,invoice,"Dupont\nC2,invoice,B\n'
    )

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"line": 2, "column": None, "column_number": None, "msg": "a quoted field opened on this line is never closed"}
    ]
    assert await all_customer_numbers(directory) == []


@pytest.mark.parametrize(("name", "content_type"), [("sample.csv", "text/csv"), ("sample.xlsx", XLSX)])
async def test_the_sample_files_download_and_import_as_they_are(directory, name, content_type):
    sample = await directory.get(f"/recipients/import/{name}", headers=ACME)

    assert sample.status_code == 200
    assert sample.headers["content-type"].startswith(content_type)
    assert "attachment" in sample.headers["content-disposition"]
    response = await upload(directory, name, sample.content)
    assert response.status_code == 200, response.text
    assert response.json() == {"document_type": "invoice", "rows": 2, "created": 2, "updated": 0}
    dupont = await recipient(directory, "C0001")
    assert dupont["contacts"][0]["correspondence_types"] == ["reminder", "due_notice"]
    assert (await recipient(directory, "C0002"))["postal_code"] == "01000"


async def test_imports_are_per_tenant(directory):
    await upload(directory, "a.csv", "customer_number,document_type\nC1,invoice\n")

    other = await upload(directory, "a.csv", "customer_number,document_type\nC1,invoice\n", tenant=credentials("b"))

    assert other.json()["created"] == 1
    assert (await directory.get("/recipients/C1", headers=credentials("b"))).status_code == 200


@pytest.fixture
async def small_directory(make_settings, running):
    """A directory whose .xlsx limits are small enough to pass with a few hundred cells."""
    settings = make_settings(
        RecipientDirectorySettings,
        max_import_shared_strings=100,
        max_import_cells=1_000,
        max_import_uncompressed_bytes=200_000,
    )
    service = await running(build(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://d") as http:
        yield http


def excel_workbook(*rows: list[str]) -> bytes:
    """A workbook as Excel writes one: every text in the shared strings table (openpyxl writes them inline)."""
    texts: dict[str, int] = {}
    cells = "".join(
        f'<row r="{r}">'
        + "".join(f'<c r="{chr(65 + c)}{r}" t="s"><v>{texts.setdefault(text, len(texts))}</v></c>' for c, text in enumerate(row))
        + "</row>"
        for r, row in enumerate(rows, start=1)
    )
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/>'
            f'<Override PartName="/xl/sharedStrings.xml" ContentType="{ct}.sharedStrings+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets><sheet name="recipients" sheetId="1" r:id="rId1"/>'
            "</sheets></workbook>"
        ),
        "xl/_rels/workbook.xml.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{main}"><sheetData>{cells}</sheetData></worksheet>',
        "xl/sharedStrings.xml": (
            f'<sst xmlns="{main}" count="{len(texts)}" uniqueCount="{len(texts)}">'
            + "".join(f"<si><t>{text}</t></si>" for text in texts)
            + "</sst>"
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in parts.items():
            archive.writestr(name, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + xml)
    return out.getvalue()


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error_count"] == 1 and body["message"].startswith("the file was not imported")
    return body["detail"][0]["msg"]


async def test_an_xlsx_past_the_shared_strings_cells_or_decompressed_size_limit_is_refused_naming_it(small_directory):
    """2 million shared strings once held the directory at 600 MB for 49 s: each limit stops the reading."""
    header = ["customer_number", "document_type", "name"]
    many_texts = excel_workbook(header, *([f"C{n}", "invoice", f"Client {n}"] for n in range(60)))
    message = refusal(await upload(small_directory, "texts.xlsx", many_texts))
    assert message == (
        "the workbook holds more than 100 shared strings (distinct cell texts), the limit of an import "
        "(PUBLIPOST_MAX_IMPORT_SHARED_STRINGS); split the file"
    )

    # Few distinct texts, many cells: numbers are not shared strings.
    many_cells = workbook(["customer_number", "document_type"], *([n, "invoice"] for n in range(1, 600)))
    response = await upload(small_directory, "cells.xlsx", many_cells)
    message = refusal(response)
    assert message == (
        "the sheet holds more than 1000 cells, the limit of an import (PUBLIPOST_MAX_IMPORT_CELLS); split the file"
    )
    assert response.json()["detail"][0]["line"] == 501  # where reading stopped

    # One cell far to the right makes every cell before it in its row read too.
    wide = openpyxl.Workbook()
    wide.active.append(["customer_number", "document_type"])
    wide.active.cell(row=2, column=2000, value="x")
    buffer = io.BytesIO()
    wide.save(buffer)
    assert "more than 1000 cells" in refusal(await upload(small_directory, "wide.xlsx", buffer.getvalue()))

    big_parts = io.BytesIO()
    with zipfile.ZipFile(big_parts, "w", zipfile.ZIP_DEFLATED) as archive:  # a workbook, plus 1 MB of zeros
        with zipfile.ZipFile(io.BytesIO(workbook(header, ["C1", "invoice", "A"]))) as source:
            for entry in source.infolist():
                archive.writestr(entry, source.read(entry))
        archive.writestr("xl/media/padding.bin", b"\0" * 1_000_000)
    message = refusal(await upload(small_directory, "zeros.xlsx", big_parts.getvalue()))
    assert message.startswith("the workbook is ") and message.endswith(
        "bytes once decompressed, over the 200000-byte limit of an import (PUBLIPOST_MAX_IMPORT_UNCOMPRESSED_BYTES)"
    )

    assert await all_customer_numbers(small_directory) == []
    within = excel_workbook(header, *([f"C{n}", "invoice", f"Client {n}"] for n in range(40)))
    assert (await upload(small_directory, "ok.xlsx", within)).json()["created"] == 40
