"""A mailing started over HTTP (POST /mailings), against the real broker, database, template service,
recipient directory and render-pdf: records as JSON, an uploaded CSV, XLSX or NDJSON file, or a segment."""

import codecs
import io
import json
import uuid
from pathlib import Path

import httpx
import openpyxl
import pytest
from docx import Document
from publipost_localstack.processes import free_port
from publipost_merge.app import build as build_merge
from publipost_merge.settings import MergeSettings
from publipost_recipient_directory.app import build as build_directory
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings

from tests.credentials import credentials
from tests.support import sample_record, wait_until
from tests.unit.test_template_inspection import docx_with

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"
ACME, GLOBEX = credentials("acme"), credentials("globex")
LETTER_COLUMNS = ["id", "name", "document_number", "address", "postal_code", "city", "contract", "premium", "tax",
                  "amount_due", "customer_number", "branch"]


@pytest.fixture
async def stack(make_settings, running, serve_http):
    template = await running(build_template(make_settings(TemplateSettings)))
    template_url = await serve_http(template)
    directory = await running(build_directory(make_settings(RecipientDirectorySettings)))
    directory_url = await serve_http(directory)
    merge = await running(build_merge(make_settings(MergeSettings, template_url=template_url, directory_url=directory_url)))
    await running(build_render(make_settings(RenderPdfSettings)))

    def client(service, headers) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://s", headers=headers)

    async with client(template, ACME) as templates, client(directory, ACME) as recipients, client(merge, ACME) as http:
        uploaded = await templates.post(
            "/templates",
            data={"name": "Notice", "custom_fields": "signatory"},
            files={"file": ("letter.docx", SAMPLE.read_bytes())},
        )
        assert uploaded.status_code == 201, uploaded.text
        yield {"merge": merge, "http": http, "templates": templates, "recipients": recipients,
               "template_id": uploaded.json()["id"]}


async def table_template(stack) -> str:
    """A letter that prints what a spreadsheet's cells hold, as they are."""
    letter = docx_with("Dear {{ name }}, {{ city }}: {{ amount_due }} EUR. {{ signatory }}")
    uploaded = await stack["templates"].post(
        "/templates", data={"name": "Table", "custom_fields": "signatory"}, files={"file": ("table.docx", letter)}
    )
    assert uploaded.status_code == 201, uploaded.text
    return uploaded.json()["id"]


def fields(stack, **extra: object) -> dict[str, object]:
    return {"template_id": stack["template_id"], "custom_fields": {"signatory": "Jane Manager"}, "output": "docx",
            **extra}


def form(stack, **extra: str) -> dict[str, str]:
    return {"template_id": stack["template_id"], "custom_fields": json.dumps({"signatory": "Jane Manager"}),
            "output": "docx", **extra}


async def ready(stack, mailing_id: str) -> dict:
    """The mailing once settled (GET answers 404 for the instant before merge takes the request)."""

    async def settled() -> dict | None:
        answer = await stack["http"].get(f"/mailings/{mailing_id}")
        if answer.status_code == 404:
            assert "not started yet" in answer.json()["detail"], answer.text
            return None
        body = answer.json()
        return body if body["status"] not in ("rendering", "converting") else None

    return await wait_until(settled, timeout=120)


async def document_texts(stack, mailing_id: str) -> list[str]:
    items = (await stack["http"].get(f"/mailings/{mailing_id}/documents")).json()["items"]
    texts = []
    for item in items:
        data = await stack["merge"].storage.blobs.get(item["docx_blob_id"])
        texts.append("\n".join(p.text for p in Document(io.BytesIO(data)).paragraphs))
    return texts


async def records_files(stack) -> int:
    merge = stack["merge"]
    files = merge.storage.client[merge.settings.blob_database_name]["fs.files"]
    return await files.count_documents({"filename": {"$regex": r"\.records\.ndjson$"}})


async def test_records_given_as_json_make_a_mailing_of_one_document_per_record(stack):
    started = await stack["http"].post("/mailings", json=fields(stack, name="Notices", records=[sample_record(1), sample_record(2)]))

    assert started.status_code == 202, started.text
    mailing = await ready(stack, started.json()["mailing_id"])
    assert (mailing["status"], mailing["documents"], mailing["name"]) == ("ready", 2, "Notices")
    texts = await document_texts(stack, mailing["id"])
    assert ["Dear Client Number1," in t and "Jane Manager" in t for t in texts] == [True, False]
    assert "Dear Client Number2," in texts[1]


async def test_a_long_list_of_json_records_travels_by_a_records_file(stack):
    records = [sample_record(n, notes="x" * 2000) for n in range(1, 151)]  # about 330 KB: over the inline limit

    started = await stack["http"].post("/mailings", json=fields(stack, records=records))

    assert started.status_code == 202, started.text
    assert (await ready(stack, started.json()["mailing_id"]))["documents"] == 150
    assert await records_files(stack) == 1


async def test_an_uploaded_csv_with_semicolons_and_accents_makes_its_documents(stack):
    rows = [";".join(LETTER_COLUMNS), "r1;Zoé Lefèvre;F-1;3 rue de l'Église;45000;Orléans;CT-1;100;20;120;C1;Tours",
            'r2;"Dupont; fils";F-2;1 rue A;75002;Paris;CT-2;50;10;60;C2;Lyon']
    csv_file = codecs.BOM_UTF8 + "\r\n".join(rows).encode()

    template_id = await table_template(stack)

    started = await stack["http"].post(
        "/mailings", data=form(stack, template_id=template_id), files={"file": ("clients.csv", csv_file)}
    )

    assert started.status_code == 202, started.text
    mailing = await ready(stack, started.json()["mailing_id"])
    assert (mailing["status"], mailing["documents"]) == ("ready", 2)
    texts = await document_texts(stack, mailing["id"])
    assert texts == ["Dear Zoé Lefèvre, Orléans: 120 EUR. Jane Manager", "Dear Dupont; fils, Paris: 60 EUR. Jane Manager"]


async def test_a_csv_fills_the_sample_letter_whose_template_compares_the_amount_with_a_number(stack):
    """A column of numbers reads as numbers, as a JSON record carries them: `{% if amount_due > 500 %}` holds
    for a spreadsheet's records too, and a postal code keeps its leading zero."""
    rows = [";".join(LETTER_COLUMNS), "r1;Zoé Lefèvre;F-1;3 rue de l'Église;01000;Bourg;CT-1;500;100;600;C1;Lyon",
            "r2;Paul Martin;F-2;1 rue A;75002;Paris;CT-2;50;10;60;C2;Lyon"]

    started = await stack["http"].post(
        "/mailings", data=form(stack), files={"file": ("clients.csv", "\r\n".join(rows).encode())}
    )

    assert started.status_code == 202, started.text
    mailing = await ready(stack, started.json()["mailing_id"])
    assert (mailing["status"], mailing["documents"], mailing["failed"]) == ("ready", 2, 0)
    over, under = await document_texts(stack, mailing["id"])
    assert "01000 Bourg" in over and "you may pay it in three instalments" in over
    assert "75002 Paris" in under and "instalments" not in under


async def test_an_uploaded_xlsx_makes_one_document_per_row_of_its_first_sheet(stack):
    book = openpyxl.Workbook()
    book.active.append(LETTER_COLUMNS)
    for n in (1, 2, 3):
        book.active.append([f"r{n}", f"Client Number{n}", f"F-{n}", "1 rue A", "75002", "Paris", f"CT-{n}", 100, 20, 120, f"C{n}", "Lyon"])
    data = io.BytesIO()
    book.save(data)

    template_id = await table_template(stack)

    started = await stack["http"].post(
        "/mailings", data=form(stack, template_id=template_id), files={"file": ("clients.xlsx", data.getvalue())}
    )

    assert started.status_code == 202, started.text
    mailing = await ready(stack, started.json()["mailing_id"])
    assert mailing["documents"] == 3
    assert (await document_texts(stack, mailing["id"]))[2] == "Dear Client Number3, Paris: 120 EUR. Jane Manager"


async def test_an_uploaded_ndjson_makes_one_document_per_line(stack):
    lines = "\n".join(json.dumps(sample_record(n)) for n in (1, 2)).encode()

    started = await stack["http"].post("/mailings", data=form(stack), files={"file": ("clients.ndjson", lines)})

    assert started.status_code == 202, started.text
    assert (await ready(stack, started.json()["mailing_id"]))["documents"] == 2


async def test_a_csv_line_that_cannot_be_read_is_refused_naming_line_and_column_and_nothing_is_stored(stack):
    rows = [";".join(LETTER_COLUMNS), "r1;Ann;F-1;1 rue A;75002;Paris;CT-1;100;20;120;C1;Lyon",
            'r2;"Bob" Jr;F-2;1 rue A;75002;Paris;CT-2;100;20;120;C2;Lyon']
    request_id = str(uuid.uuid4())

    refused = await stack["http"].post(
        "/mailings", data=form(stack, request_id=request_id), files={"file": ("c.csv", "\n".join(rows).encode())}
    )

    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert problem["loc"] == ["body", "file"] and problem["msg"].startswith("line 3, column 2: not readable as CSV")
    assert await records_files(stack) == 0
    assert (await stack["http"].get("/mailings")).json()["total"] == 0
    # Refused, the request id is free: the file fixed, the same id starts the mailing.
    rows[2] = "r2;Bob;F-2;1 rue A;75002;Paris;CT-2;100;20;120;C2;Lyon"
    again = await stack["http"].post(
        "/mailings", data=form(stack, request_id=request_id), files={"file": ("c.csv", "\n".join(rows).encode())}
    )
    assert again.status_code == 202, again.text


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"records": [sample_record(1), {**sample_record(2), "id": ""}]}, ["body", "records[1]", "id"], "record has no id"),
        ({"records": [{"id": "r1"}]}, ["body", "records[0]"], "record lacks field(s) the template uses: address, amount_due"),
        ({"records": [sample_record(1)], "segment_id": "s1"}, ["body"], "not records and segment_id"),
        ({}, ["body"], "give exactly one of records, segment_id or file (a form's upload), not none"),
        ({"records": [sample_record(1)], "custom_fields": {}}, ["body", "custom_fields"], "signatory"),
        ({"records": [sample_record(1)], "colour": "red"}, ["body", "colour"], "Extra inputs are not permitted"),
        ({"records": []}, ["body", "records"], "no records: nothing to merge"),
    ],
)
async def test_a_bad_json_request_is_refused_naming_what_is_wrong(stack, body, loc, words):
    refused = await stack["http"].post("/mailings", json=fields(stack, **body))

    assert refused.status_code == 422, refused.text
    assert any(p["loc"][: len(loc)] == loc and words in p["msg"] for p in refused.json()["detail"]), refused.text
    assert (await stack["http"].get("/mailings")).json()["total"] == 0


async def test_a_file_of_another_kind_is_refused_naming_the_kinds_taken(stack):
    refused = await stack["http"].post("/mailings", data=form(stack), files={"file": ("letters.pdf", b"%PDF-1.7")})

    assert refused.status_code == 422
    assert refused.json()["detail"] == [
        {"loc": ["body", "file"], "msg": ".pdf is not a records file; send .json, .ndjson, .csv or .xlsx",
         "type": "value_error"}
    ]


async def test_a_record_without_id_in_an_xlsx_is_refused_naming_sheet_and_row(stack):
    book = openpyxl.Workbook()
    book.active.title = "Clients"
    book.active.append(LETTER_COLUMNS)
    book.active.append([None, "Ann", "F-1", "1 rue A", "75002", "Paris", "CT-1", 100, 20, 120, "C1", "Lyon"])
    data = io.BytesIO()
    book.save(data)

    refused = await stack["http"].post("/mailings", data=form(stack), files={"file": ("c.xlsx", data.getvalue())})

    assert refused.status_code == 422
    assert refused.json()["detail"][0]["msg"] == "sheet 'Clients', row 2: record has no id"
    assert await records_files(stack) == 0


async def test_a_segment_makes_documents_for_its_members_only(stack):
    recipients = stack["recipients"]
    for number, country in (("C1", "FR"), ("C2", "BE"), ("C3", "FR")):
        answer = await recipients.put(f"/recipients/{number}", json={"name": f"Customer {number}", "country": country})
        assert answer.status_code == 201, answer.text
    segment = await recipients.post("/segments", json={"name": "French", "filter": {"country_in": ["FR"]}})
    letter = docx_with("Dear {{ name }}, customer {{ customer_number }}.")
    template = await stack["templates"].post(
        "/templates", data={"name": "Short", "custom_fields": ""}, files={"file": ("short.docx", letter)}
    )
    assert template.status_code == 201, template.text

    started = await stack["http"].post(
        "/mailings", json={"template_id": template.json()["id"], "segment_id": segment.json()["id"], "output": "docx"}
    )

    assert started.status_code == 202, started.text
    mailing = await ready(stack, started.json()["mailing_id"])
    texts = await document_texts(stack, mailing["id"])
    assert sorted(texts) == ["Dear Customer C1, customer C1.", "Dear Customer C3, customer C3."]


async def test_the_same_request_id_twice_makes_one_mailing(stack):
    body = fields(stack, request_id="crm-2026-11", records=[sample_record(1)])

    first = await stack["http"].post("/mailings", json=body)
    second = await stack["http"].post("/mailings", json={**body, "records": [sample_record(1), sample_record(2)]})

    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    await ready(stack, first.json()["mailing_id"])
    third = await stack["http"].post("/mailings", json=body)
    assert third.json() == first.json()
    listing = (await stack["http"].get("/mailings")).json()
    assert listing["total"] == 1 and listing["items"][0]["documents"] == 1


async def test_another_tenant_can_use_neither_the_template_nor_the_segment(stack):
    segment = await stack["recipients"].post("/segments", json={"name": "All", "filter": {}})
    http = stack["http"]

    template = await http.post("/mailings", headers=GLOBEX, json=fields(stack, records=[sample_record(1)]))
    own_template = await stack["templates"].post(
        "/templates",
        headers=GLOBEX,
        data={"name": "Theirs", "custom_fields": ""},
        files={"file": ("t.docx", docx_with("Dear {{ name }}"))},
    )
    segment_used = await http.post(
        "/mailings", headers=GLOBEX, json={"template_id": own_template.json()["id"], "segment_id": segment.json()["id"]}
    )

    assert template.status_code == 404 and "no template" in template.json()["detail"]
    assert segment_used.status_code == 404 and "no segment" in segment_used.json()["detail"]
    assert (await http.get("/mailings", headers=GLOBEX)).json()["total"] == 0
    assert await records_files(stack) == 0


async def test_a_template_service_out_of_reach_is_answered_503_and_nothing_is_started(make_settings, running):
    merge = await running(build_merge(make_settings(MergeSettings, template_url=f"http://127.0.0.1:{free_port()}")))
    transport = httpx.ASGITransport(merge.http_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://s", headers=ACME) as http:
        answer = await http.post("/mailings", json={"template_id": "t-1", "records": [sample_record(1)]})

        assert answer.status_code == 503 and answer.headers["retry-after"]
        assert "did not answer as expected (ConnectError); nothing was started" in answer.json()["detail"]
        assert (await http.get("/mailings")).json()["total"] == 0
