"""The merge service against the real broker, database, template service and render-pdf (which counts the
pages of DOCX mailings too)."""

import asyncio
import io
import json
import tracemalloc
import uuid
from pathlib import Path

import httpx
import pytest
from docx import Document
from prometheus_client import REGISTRY
from publipost_bus import Bus
from publipost_contracts import (
    MAX_MESSAGE_BYTES,
    DispatchCompleted,
    DocumentSent,
    DocumentSideEffect,
    DocumentsRendered,
    Failure,
    MailingRegrouped,
    MergeCompleted,
    MergeRejected,
    MergeRequested,
    RenderRequested,
    RenderResult,
)
from publipost_merge.app import build as build_merge
from publipost_merge.domain import Document as MergeDocument
from publipost_merge.handlers import complete_if_done
from publipost_merge.settings import MergeSettings
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.domain import pdf_blob_id
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_settings import ServiceSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings
from pypdf import PdfReader, PdfWriter

from tests.credentials import credentials
from tests.support import EventTap, wait_until
from tests.support import sample_record as record
from tests.unit.test_merge_domain import a_mailing
from tests.unit.test_template_inspection import docx_with

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"
TENANT = credentials("acme")


@pytest.fixture
async def stack(request, make_settings, running, serve_http, infra, namespace):
    template = build_template(make_settings(TemplateSettings))
    await running(template)
    template_url = await serve_http(template)
    merge = build_merge(make_settings(MergeSettings, template_url=template_url))
    await running(merge)
    if request.node.get_closest_marker("pdfs_answered_by_the_test") is None:
        await running(build_render(make_settings(RenderPdfSettings)))
    system = Bus(make_settings(ServiceSettings, service_name="crm"), publishes=[MergeRequested, DispatchCompleted, DocumentsRendered, DocumentSent])
    await system.start()
    template_http = httpx.AsyncClient(base_url=template_url, headers=TENANT)

    async def upload(name: str = "Notice", docx: bytes | None = None, **form: str) -> str:
        """A template (samples/letter.docx unless given), with the template service's form fields (type, options)."""
        uploaded = await template_http.post(
            "/templates",
            data={"name": name, "custom_fields": "signatory", **form},
            files={"file": ("l.docx", SAMPLE.read_bytes() if docx is None else docx)},
        )
        assert uploaded.status_code == 201, uploaded.text
        return uploaded.json()["id"]

    template_id = await upload()
    merge_http = httpx.AsyncClient(transport=httpx.ASGITransport(merge.http_app()), base_url="http://merge")
    taps = (MergeCompleted, MergeRejected, MailingRegrouped, DocumentSideEffect)
    async with EventTap(infra.rabbitmq_url, namespace, *taps) as tap:
        yield {
            "system": system,
            "template_id": template_id,
            "upload": upload,
            "merge": merge,
            "http": merge_http,
            "tap": tap,
        }
    await template_http.aclose()
    await merge_http.aclose()
    await system.stop()


def request(template_id: str, records: list[dict[str, object]] | None, **extra: object) -> MergeRequested:
    return MergeRequested(
        tenant_id="acme",
        correlation_id=str(uuid.uuid4()),
        request_id=str(uuid.uuid4()),
        template_id=template_id,
        records=records,
        **{"name": "November notices", "custom_fields": {"signatory": "Jane Manager"}, "output": "docx", **extra},
    )


async def docx_text(stack, blob_id: str) -> str:
    data = await stack["merge"].storage.blobs.get(blob_id)
    document = Document(io.BytesIO(data))
    cells = [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join([p.text for p in document.paragraphs] + cells)


async def test_a_merge_renders_one_document_per_record_with_its_fields(stack):
    event = request(stack["template_id"], [record(1), record(2), record(3)])
    await stack["system"].publish(event)
    completed = await stack["tap"].next(MergeCompleted, lambda e: e.request_id == event.request_id)
    assert (completed.status, completed.documents, completed.failed) == ("ready", 3, 0)

    http = stack["http"]
    mailing = (await http.get(f"/mailings/{completed.mailing_id}", headers=TENANT)).json()
    assert mailing["name"] == "November notices" and mailing["status"] == "ready"
    documents = (await http.get(f"/mailings/{completed.mailing_id}/documents", headers=TENANT)).json()["items"]
    assert [d["document_number"] for d in documents] == ["INV-0001", "INV-0002", "INV-0003"]
    text = await docx_text(stack, documents[1]["docx_blob_id"])
    assert "Dear Client Number2," in text and "Jane Manager" in text and "120 EUR" in text
    assert "Client Number1" not in text


async def test_the_same_request_published_twice_makes_one_mailing(stack):
    event = request(stack["template_id"], [record(1)])
    await stack["system"].publish(event)
    await stack["system"].publish(event.model_copy(update={"event_id": uuid.uuid4()}))
    await stack["tap"].next(MergeCompleted, lambda e: e.request_id == event.request_id)
    listing = (await stack["http"].get("/mailings", headers=TENANT)).json()
    assert listing["total"] == 1


async def test_a_bad_request_is_rejected_with_every_problem_listed(stack):
    event = request("no-such-template", [record(1), {"name": "no id"}, record(3, id="")])
    await stack["system"].publish(event)
    rejected = await stack["tap"].next(MergeRejected, lambda e: e.request_id == event.request_id)
    assert [(p.field, p.record_index) for p in rejected.problems] == [
        ("template_id", None),
        ("records[].id", 1),
        ("records[].id", 2),
    ]
    assert (await stack["http"].get("/mailings", headers=TENANT)).json()["total"] == 0


@pytest.mark.parametrize("records_file_id", ["6750e1f0c0ffee0000c0ffee", "not-an-object-id"])
async def test_a_request_whose_records_file_is_missing_is_rejected_at_once_naming_it(stack, records_file_id):
    event = request(stack["template_id"], None, records_file_id=records_file_id)
    await stack["system"].publish(event)
    rejected = await stack["tap"].next(MergeRejected, lambda e: e.request_id == event.request_id)
    assert [p.field for p in rejected.problems] == ["records_file_id"]
    assert records_file_id in rejected.problems[0].message
    queue = next(q for q in stack["merge"].bus.queue_names() if q.endswith(".merge.requested"))

    def outcomes() -> dict[str, float | None]:
        return {
            outcome: REGISTRY.get_sample_value("publipost_messages_total", {"consumer": queue, "outcome": outcome})
            for outcome in ("handled", "retried", "dead_lettered")
        }

    # The message is counted once its handler returns, a moment after merge.rejected has left.
    await wait_until(lambda: outcomes()["handled"] is not None, timeout=10)
    assert outcomes() == {"handled": 1.0, "retried": None, "dead_lettered": None}  # answered, never tried again


async def test_a_record_that_fails_to_render_fails_alone(stack):
    event = request(stack["template_id"], [record(1), record(2, amount_due="not a number"), record(3)])
    await stack["system"].publish(event)
    completed = await stack["tap"].next(MergeCompleted, lambda e: e.request_id == event.request_id)
    assert (completed.status, completed.documents, completed.failed) == ("ready", 3, 1)
    documents = (await stack["http"].get(f"/mailings/{completed.mailing_id}/documents", headers=TENANT)).json()
    failed = [d for d in documents["items"] if d["status"] == "failed"]
    assert [d["record_id"] for d in failed] == ["r2"] and "rendering failed" in failed[0]["error"]


async def test_a_record_whose_document_grows_past_the_budget_fails_alone_naming_it(stack):
    """Two nested loops of 10,000 once rendered 10^8 characters and held LibreOffice for minutes."""
    loops = "{% for i in range(premium) %}{% for j in range(10000) %}xxxxxxxxxx{% endfor %}{% endfor %}"
    template_id = await stack["upload"]("Loops", docx_with("Dear {{ name }}, {{ signatory }}", loops))
    event = request(template_id, [record(1, premium=2), record(2, premium=10_000), record(3, premium=2)])
    completed = await completed_for(stack, event)
    assert (completed.status, completed.documents, completed.failed) == ("ready", 3, 1)

    documents = (await stack["http"].get(f"/mailings/{completed.mailing_id}/documents", headers=TENANT)).json()
    failed = [d for d in documents["items"] if d["status"] == "failed"]
    assert [d["record_id"] for d in failed] == ["r2"] and failed[0]["docx_blob_id"] is None
    assert failed[0]["error"] == (
        "rendering failed: the document is over the budget of 10000000 bytes of rendered XML a record may take "
        "(PUBLIPOST_MAX_DOCUMENT_BYTES): its template loops too long or repeats too much"
    )
    rendered = [d for d in documents["items"] if d["status"] != "failed"]
    assert [d["record_id"] for d in rendered] == ["r1", "r3"]
    assert "x" * 200_000 in await docx_text(stack, rendered[1]["docx_blob_id"])


async def test_a_dispatched_mailing_is_regrouped_into_sent_and_not_sent(stack):
    event = request(stack["template_id"], [record(n) for n in range(1, 6)])
    await stack["system"].publish(event)
    completed = await stack["tap"].next(MergeCompleted, lambda e: e.request_id == event.request_id)
    http = stack["http"]
    documents = (await http.get(f"/mailings/{completed.mailing_id}/documents", headers=TENANT)).json()["items"]
    failures = [Failure(document_id=documents[i]["id"], reason="550 mailbox unavailable") for i in (1, 3)]
    dispatched = DispatchCompleted.caused_by(
        event, dispatch_id="d1", mailing_id=completed.mailing_id, sent=3, failed=2, failures=failures
    )
    await stack["system"].publish(dispatched)
    await stack["system"].publish(dispatched)  # a redelivered completion changes nothing twice

    regrouped = await stack["tap"].next(MailingRegrouped)
    assert (regrouped.sent, regrouped.not_sent) == (3, 2)
    listing = {m["name"]: m for m in (await http.get("/mailings", headers=TENANT)).json()["items"]}
    assert listing["November notices"]["status"] == "replaced"
    assert listing["November notices (sent by e-mail)"]["documents"] == 3
    assert listing["November notices (not sent by e-mail)"]["documents"] == 2
    not_sent = (
        await http.get(f"/mailings/{regrouped.not_sent_mailing_id}/documents", headers=TENANT)
    ).json()["items"]
    assert [d["document_number"] for d in not_sent] == ["INV-0002", "INV-0004"]


async def test_a_french_tenant_s_regrouped_mailings_are_named_in_french(stack):
    http = stack["http"]
    chosen = await http.put("/settings", headers=TENANT, json={"combined_page_limit": 500, "language": "fr"})
    assert chosen.status_code == 200, chosen.text
    assert (await http.get("/settings", headers=TENANT)).json()["language"] == "fr"
    refused = await http.put("/settings", headers=TENANT, json={"combined_page_limit": 500, "language": "de"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "language"]

    event = request(stack["template_id"], [record(n) for n in range(1, 4)])
    await stack["system"].publish(event)
    completed = await stack["tap"].next(MergeCompleted, lambda e: e.request_id == event.request_id)
    documents = (await http.get(f"/mailings/{completed.mailing_id}/documents", headers=TENANT)).json()["items"]
    failures = [Failure(document_id=documents[1]["id"], reason="550 mailbox unavailable")]
    await stack["system"].publish(
        DispatchCompleted.caused_by(event, dispatch_id="d-fr", mailing_id=completed.mailing_id, sent=2, failed=1, failures=failures)
    )
    await stack["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == "d-fr")
    names = {m["name"]: m["documents"] for m in (await http.get("/mailings", headers=TENANT)).json()["items"]}
    assert names["November notices (envoyé par email)"] == 2
    assert names["November notices (non envoyé par email)"] == 1


async def test_a_late_render_answer_after_regrouping_leaves_the_replaced_mailing_alone(stack):
    event = request(stack["template_id"], [record(1), record(2)])
    await stack["system"].publish(event)
    completed = await stack["tap"].next(MergeCompleted, lambda e: e.request_id == event.request_id)
    await stack["system"].publish(
        DispatchCompleted.caused_by(
            event, dispatch_id="d1", mailing_id=completed.mailing_id, sent=2, failed=0, failures=[]
        )
    )
    await stack["tap"].next(MailingRegrouped)

    late = DocumentsRendered.caused_by(event, key="late", mailing_id=completed.mailing_id, chunk=0, results=[])
    await stack["system"].publish(late)
    merge = stack["merge"]
    queue = merge.bus.topology.consumer_queue("merge", late.routing_key).name
    await wait_until(lambda: merge.bus.inbox.already_processed(queue, str(late.event_id)))

    source = (await stack["http"].get(f"/mailings/{completed.mailing_id}", headers=TENANT)).json()
    assert source["status"] == "replaced"


async def completed_for(stack, event: MergeRequested) -> MergeCompleted:
    await stack["system"].publish(event)
    return await stack["tap"].next(MergeCompleted, lambda e: e.request_id == event.request_id)


async def test_a_request_without_the_templates_custom_field_values_is_refused_naming_them(stack):
    event = request(stack["template_id"], [record(1)]).model_copy(update={"custom_fields": {}})
    await stack["system"].publish(event)
    rejected = await stack["tap"].next(MergeRejected, lambda e: e.request_id == event.request_id)
    assert [(p.field, p.message) for p in rejected.problems] == [
        ("custom_fields", "no value for the template's custom fields: signatory")
    ]


async def test_records_lacking_template_fields_are_refused_or_rendered_empty_and_listed(stack):
    records = [record(1), {k: v for k, v in record(2).items() if k not in ("premium", "tax")}, record(3)]
    refused = request(stack["template_id"], records)
    await stack["system"].publish(refused)
    rejected = await stack["tap"].next(MergeRejected, lambda e: e.request_id == refused.request_id)
    assert [(p.record_index, p.message) for p in rejected.problems] == [
        (1, "record lacks field(s) the template uses: premium, tax")
    ]

    completed = await completed_for(stack, request(stack["template_id"], records, missing_fields="render_empty"))
    assert (completed.status, completed.documents, completed.failed) == ("ready", 3, 0)
    assert completed.warnings_count == 1
    assert completed.warnings[0].record_index == 1
    assert "rendered empty" in completed.warnings[0].message


async def test_a_mailing_of_a_template_requiring_validation_waits_for_approval(stack):
    template_id = await stack["upload"](
        "Reminder", template_type="payment_reminder", validation_required="true"
    )
    event = request(template_id, [record(1), record(2)])
    completed = await completed_for(stack, event)
    assert completed.status == "pending_validation"
    assert stack["tap"].of(DocumentSideEffect) == []  # nothing is announced before approval

    http = stack["http"]
    approved = await http.post(f"/mailings/{completed.mailing_id}/approve", headers=TENANT)
    assert approved.status_code == 200 and approved.json()["status"] == "ready"
    ready = await stack["tap"].next(MergeCompleted, lambda e: e.mailing_id == completed.mailing_id and e.status == "ready")
    assert ready.documents == 2
    effects = await wait_until(lambda: len(stack["tap"].of(DocumentSideEffect)) == 2 and stack["tap"].of(DocumentSideEffect))
    assert sorted(e.record_id for e in effects) == ["r1", "r2"]
    assert {e.template_type for e in effects} == {"payment_reminder"}

    again = await http.post(f"/mailings/{completed.mailing_id}/reject", headers=TENANT)
    assert again.status_code == 409


async def test_a_rejected_mailing_keeps_its_documents_and_is_marked_rejected(stack):
    template_id = await stack["upload"]("Checked", validation_required="true")
    completed = await completed_for(stack, request(template_id, [record(1)]))
    http = stack["http"]
    rejected = await http.post(
        f"/mailings/{completed.mailing_id}/reject", headers=TENANT, json={"reason": "wrong amounts"}
    )
    assert rejected.json()["status"] == "rejected"
    documents = (await http.get(f"/mailings/{completed.mailing_id}/documents", headers=TENANT)).json()["items"]
    content = await http.get(
        f"/mailings/{completed.mailing_id}/documents/{documents[0]['id']}/content", params={"format": "docx"}, headers=TENANT
    )
    assert content.status_code == 200 and "Client Number1" in docx_text_of(content.content)


async def test_a_document_number_with_quotes_and_accents_downloads_under_a_safe_name(stack):
    """A quote or a line break in a document number used to break the Content-Disposition header."""
    completed = await completed_for(stack, request(stack["template_id"], [record(1, document_number='FAC "7" n°1')]))
    http = stack["http"]
    documents = (await http.get(f"/mailings/{completed.mailing_id}/documents", headers=TENANT)).json()["items"]
    content = await http.get(
        f"/mailings/{completed.mailing_id}/documents/{documents[0]['id']}/content", params={"format": "docx"}, headers=TENANT
    )
    assert content.status_code == 200
    assert content.headers["content-disposition"] == (
        "attachment; filename=\"FAC 7 n1.docx\"; filename*=UTF-8''FAC%20%227%22%20n%C2%B01.docx"
    )


async def test_control_characters_in_a_document_number_or_a_mailing_name_are_rejected_naming_them(stack):
    """They become the e-mail's attachment name and subject, and the download's file name."""
    records = [record(1), record(2, document_number="INV-2\r\nX-Injected: 1"), record(3, document_number=None, id="r\x0b3")]
    event = request(stack["template_id"], records, name="November\x00notices")
    await stack["system"].publish(event)
    rejected = await stack["tap"].next(MergeRejected, lambda e: e.request_id == event.request_id)
    assert [(p.field, p.record_index) for p in rejected.problems] == [
        ("name", None),
        ("records[].document_number", 1),
        ("records[].id", 2),
    ]
    assert "contains the control character U+000D" in rejected.problems[1].message
    assert (await stack["http"].get("/mailings", headers=TENANT)).json()["total"] == 0

    completed = await completed_for(stack, request(stack["template_id"], [record(1)]))
    renamed = await stack["http"].patch(f"/mailings/{completed.mailing_id}", headers=TENANT, json={"name": "Nov\x0cember"})
    assert renamed.status_code == 422
    assert renamed.json()["detail"][0]["loc"] == ["body", "name"]
    assert "control character U+000C" in renamed.json()["detail"][0]["msg"]


async def test_the_print_file_is_split_into_parts_of_whole_documents(stack):
    http = stack["http"]
    assert (await http.put("/settings", headers=TENANT, json={"combined_page_limit": 2})).status_code == 200
    completed = await completed_for(stack, request(stack["template_id"], [record(n) for n in range(1, 6)]))

    assert [(p.number, p.documents) for p in completed.parts] == [(1, 2), (2, 2), (3, 1)]
    texts = []
    for part in completed.parts:
        response = await http.get(f"/mailings/{completed.mailing_id}/parts/{part.number}", headers=TENANT)
        assert response.status_code == 200
        texts.append(docx_text_of(response.content))
    assert "Client Number1" in texts[0] and "Client Number2" in texts[0] and "Client Number3" not in texts[0]
    assert "Client Number5" in texts[2]
    missing = await http.get(f"/mailings/{completed.mailing_id}/parts/4", headers=TENANT)
    assert missing.status_code == 404 and "3 part(s)" in missing.json()["detail"]


async def print_file_blobs(stack, mailing_id: str) -> list[str]:
    """The print file parts stored for the mailing (the files named "… part N.docx")."""
    merge = stack["merge"]
    files = merge.storage.client[merge.settings.blob_database_name]["fs.files"]
    return [
        str(f["_id"])
        async for f in files.find({}, {"filename": 1, "metadata": 1})
        if f["metadata"].get("mailing_id") == mailing_id and " part " in f["filename"]
    ]


async def test_the_print_file_is_built_at_its_first_download_only(stack):
    http, blobs = stack["http"], stack["merge"].storage.blobs
    assert (await http.put("/settings", headers=TENANT, json={"combined_page_limit": 2})).status_code == 200
    completed = await completed_for(stack, request(stack["template_id"], [record(n) for n in range(1, 4)]))

    # Settling plans the parts, from the page counts, and builds none.
    assert [(p.number, p.documents, p.pages) for p in completed.parts] == [(1, 2, 2), (2, 1, 1)]
    assert await print_file_blobs(stack, completed.mailing_id) == []
    mailing = (await http.get(f"/mailings/{completed.mailing_id}", headers=TENANT)).json()
    assert mailing["parts"] == [{"number": 1, "documents": 2, "pages": 2}, {"number": 2, "documents": 1, "pages": 1}]

    first = await http.get(f"/mailings/{completed.mailing_id}/parts/1", headers=TENANT)
    assert first.status_code == 200
    assert 'filename="November notices part 1.docx"' in first.headers["content-disposition"]
    text = docx_text_of(first.content)
    assert "Client Number1" in text and "Client Number2" in text and "Client Number3" not in text
    assert await print_file_blobs(stack, completed.mailing_id) == [completed.parts[0].blob_id]
    stored = await blobs.info(completed.parts[0].blob_id)

    again = await http.get(f"/mailings/{completed.mailing_id}/parts/1", headers=TENANT)
    assert again.status_code == 200 and again.content == first.content
    assert (await blobs.info(completed.parts[0].blob_id))["uploadDate"] == stored["uploadDate"]  # not built again


async def test_two_first_downloads_at_once_both_get_the_part_and_one_file_is_stored(stack):
    http = stack["http"]
    completed = await completed_for(stack, request(stack["template_id"], [record(n) for n in range(1, 4)]))
    path = f"/mailings/{completed.mailing_id}/parts/1"

    first, second = await asyncio.gather(http.get(path, headers=TENANT), http.get(path, headers=TENANT))

    assert (first.status_code, second.status_code) == (200, 200)
    assert docx_text_of(first.content) == docx_text_of(second.content)
    assert await print_file_blobs(stack, completed.mailing_id) == [completed.parts[0].blob_id]


async def test_regrouping_deletes_the_parts_that_were_downloaded(stack):
    http = stack["http"]
    event = request(stack["template_id"], [record(1), record(2)])
    completed = await completed_for(stack, event)
    assert (await http.get(f"/mailings/{completed.mailing_id}/parts/1", headers=TENANT)).status_code == 200
    assert await print_file_blobs(stack, completed.mailing_id) == [completed.parts[0].blob_id]

    await stack["system"].publish(
        DispatchCompleted.caused_by(
            event, dispatch_id="d1", mailing_id=completed.mailing_id, sent=2, failed=0, failures=[]
        )
    )
    regrouped = await stack["tap"].next(MailingRegrouped)

    assert await print_file_blobs(stack, completed.mailing_id) == []
    sent = (await http.get(f"/mailings/{regrouped.sent_mailing_id}", headers=TENANT)).json()
    assert sent["parts"] == [{"number": 1, "documents": 2, "pages": 2}]


async def test_regrouping_a_mailing_whose_print_file_was_never_downloaded_deletes_nothing_and_plans_anew(stack):
    http = stack["http"]
    event = request(stack["template_id"], [record(n) for n in range(1, 6)])
    completed = await completed_for(stack, event)
    documents = (await http.get(f"/mailings/{completed.mailing_id}/documents", headers=TENANT)).json()["items"]
    failures = [Failure(document_id=documents[i]["id"], reason="550 mailbox unavailable") for i in (1, 3)]
    await stack["system"].publish(
        DispatchCompleted.caused_by(
            event, dispatch_id="d1", mailing_id=completed.mailing_id, sent=3, failed=2, failures=failures
        )
    )
    regrouped = await stack["tap"].next(MailingRegrouped)

    # Nothing was built, so nothing was deleted, and the regrouped mailings' parts are only planned.
    for mailing_id in (completed.mailing_id, regrouped.sent_mailing_id, regrouped.not_sent_mailing_id):
        assert await print_file_blobs(stack, mailing_id) == []
    not_sent = (await http.get(f"/mailings/{regrouped.not_sent_mailing_id}", headers=TENANT)).json()
    assert not_sent["parts"] == [{"number": 1, "documents": 2, "pages": 2}]
    part = await http.get(f"/mailings/{regrouped.not_sent_mailing_id}/parts/1", headers=TENANT)
    assert part.status_code == 200
    text = docx_text_of(part.content)
    assert "Client Number2" in text and "Client Number4" in text
    assert not any(f"Client Number{n}" in text for n in (1, 3, 5))
    source = (await http.get(f"/mailings/{completed.mailing_id}", headers=TENANT)).json()
    assert source["parts"] == [] and source["status"] == "replaced"


async def test_mailings_are_listed_by_filter_renamed_and_deleted_with_their_files(stack):
    http = stack["http"]
    first = await completed_for(stack, request(stack["template_id"], [record(1)], name="Spring reminders"))
    await completed_for(stack, request(stack["template_id"], [record(2)], name="Autumn notices"))

    found = (await http.get("/mailings", headers=TENANT, params={"name": "SPRING", "status": "ready"})).json()
    assert [m["name"] for m in found["items"]] == ["Spring reminders"]
    renamed = await http.patch(f"/mailings/{first.mailing_id}", headers=TENANT, json={"name": "Spring 2027"})
    assert renamed.json()["name"] == "Spring 2027"

    documents = (await http.get(f"/mailings/{first.mailing_id}/documents", headers=TENANT)).json()["items"]
    blobs = stack["merge"].storage.blobs
    assert (await http.get(f"/mailings/{first.mailing_id}/parts/1", headers=TENANT)).status_code == 200  # builds it
    files = [documents[0]["docx_blob_id"], *(p.blob_id for p in first.parts)]
    assert all([await blobs.exists(f) for f in files])
    assert (await http.delete(f"/mailings/{first.mailing_id}", headers=TENANT)).status_code == 204
    assert (await http.get(f"/mailings/{first.mailing_id}", headers=TENANT)).status_code == 404
    assert not any([await blobs.exists(f) for f in files])
    listed = (await http.get("/mailings", headers=TENANT)).json()["items"]
    assert [m["name"] for m in listed] == ["Autumn notices"]


async def test_a_100000_record_request_by_reference_is_answered_within_the_message_limit(stack):
    """Validation streams the records file: every record lacks its id, the refusal lists 1,000 of them."""
    lines = b"".join(json.dumps({"name": f"n{n}"}).encode() + b"\n" for n in range(100_000))
    file_id = await stack["merge"].storage.blobs.put(lines, "records.ndjson", "application/x-ndjson", tenant_id="acme")
    event = request(stack["template_id"], None, records_file_id=file_id, missing_fields="render_empty")

    tracemalloc.start()
    await stack["system"].publish(event)
    rejected = await stack["tap"].next(MergeRejected, lambda e: e.request_id == event.request_id, timeout=120)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert len(rejected.problems) == 1001
    assert rejected.problems[-1].message == "... and 99000 more problems"
    assert len(rejected.model_dump_json()) < MAX_MESSAGE_BYTES
    assert peak < 40_000_000  # far below the file held whole as records (~100,000 dicts)


def docx_text_of(data: bytes) -> str:
    document = Document(io.BytesIO(data))
    cells = [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join([p.text for p in document.paragraphs] + cells)


def one_page_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.pdfs_answered_by_the_test
async def test_pdfs_are_asked_for_while_rendering_goes_on_and_the_mailing_completes_once_all_are_in(
    stack, infra, namespace, monkeypatch
):
    """merge sends each chunk to render-pdf as soon as it is stored. PDFs of the first chunks come back
    while later records are still being rendered; they must not complete the mailing early."""
    renderer = stack["merge"].components.renderer
    rendering = renderer.render
    held = asyncio.Event()

    async def render_holding_the_second_chunk(template, context):
        if context["id"] == "r21":  # the first record of the second chunk (20 a chunk)
            await held.wait()
        return await rendering(template, context)

    monkeypatch.setattr(renderer, "render", render_holding_the_second_chunk)
    records = [record(n) for n in range(1, 61)]
    event = request(stack["template_id"], records, output="pdf")
    merge, pdf = stack["merge"], one_page_pdf()

    async def answer(asked: RenderRequested) -> DocumentsRendered:
        results = []
        for item in asked.documents:
            blob_id = pdf_blob_id(item.document_id)
            await merge.storage.blobs.put(pdf, "d.pdf", "application/pdf", blob_id=blob_id, tenant_id=event.tenant_id)
            results.append(RenderResult(document_id=item.document_id, pdf_blob_id=blob_id, page_count=1))
        answer = DocumentsRendered.caused_by(asked, key="pdfs", mailing_id=asked.mailing_id, chunk=asked.chunk,
                                             results=results)
        await stack["system"].publish(answer)
        return answer

    async with EventTap(infra.rabbitmq_url, namespace, RenderRequested) as render_requests:
        await stack["system"].publish(event)
        first = await render_requests.next(RenderRequested)
        first_answer = await answer(first)
        queue = merge.bus.topology.consumer_queue("merge", first_answer.routing_key).name
        await wait_until(lambda: merge.bus.inbox.already_processed(queue, str(first_answer.event_id)))
        assert not stack["tap"].of(MergeCompleted)  # 20 of 60 documents have their PDF: not complete
        mailing = (await stack["http"].get(f"/mailings/{first.mailing_id}", headers=TENANT)).json()
        assert (mailing["status"], mailing["converted"]) == ("rendering", 20)

        held.set()
        answered = {first.chunk}
        while len(answered) < 3:
            asked = await render_requests.next(RenderRequested, lambda e: e.chunk not in answered)
            await answer(asked)
            answered.add(asked.chunk)
    completed = await stack["tap"].next(MergeCompleted, lambda e: e.request_id == event.request_id)
    assert (completed.status, completed.documents, completed.failed) == ("ready", 60, 0)
    assert [part.pages for part in completed.parts] == [60]
    assert len(stack["tap"].of(MergeCompleted)) == 1
    part = await stack["http"].get(f"/mailings/{completed.mailing_id}/parts/1", headers=TENANT)
    assert part.headers["content-type"] == "application/pdf"
    assert len(PdfReader(io.BytesIO(part.content)).pages) == 60  # built at this first download, from the 60 PDFs


async def test_a_request_naming_another_tenants_records_file_is_rejected_and_renders_none_of_their_customers(stack):
    """The exploit of issue 14: acme's merge.requested names victim's records file in GridFS. The file is read
    only for the tenant its metadata names, so acme is told there is no such file, as for one never stored."""
    blobs = stack["merge"].storage.blobs
    theirs = json.dumps(record(1, name="Their Customer", email="ceo@victim.test")).encode() + b"\n"
    victim_file = await blobs.put(theirs, "records.ndjson", "application/x-ndjson", tenant_id="victim")
    untagged_file = await blobs.put(theirs, "records.ndjson", "application/x-ndjson")  # names no tenant
    for file_id in (victim_file, untagged_file):
        event = request(stack["template_id"], None, records_file_id=file_id)
        await stack["system"].publish(event)
        rejected = await stack["tap"].next(MergeRejected, lambda e, event=event: e.request_id == event.request_id)
        assert [p.field for p in rejected.problems] == ["records_file_id"]
        assert "for this tenant" in rejected.problems[0].message
    assert stack["tap"].of(MergeCompleted) == []
    listing = (await stack["http"].get("/mailings", headers=TENANT)).json()
    assert listing["total"] == 0

    # acme's own file, tagged with acme, is read as before.
    own = await blobs.put(theirs, "records.ndjson", "application/x-ndjson", tenant_id="acme")
    event = request(stack["template_id"], None, records_file_id=own)
    await stack["system"].publish(event)
    completed = await stack["tap"].next(MergeCompleted, lambda e: e.request_id == event.request_id)
    assert completed.documents == 1


async def dispatch(stack, event: MergeRequested, mailing_id: str, dispatch_id: str, failed: set[int]) -> MailingRegrouped:
    """What dispatch tells when it sent a mailing: document.sent for each sent one (to its number's address),
    then dispatch.completed with the failures (the documents whose number ends with one of `failed`)."""
    http = stack["http"]
    documents = (await http.get(f"/mailings/{mailing_id}/documents", headers=TENANT)).json()["items"]
    failing = [d for d in documents if int(d["document_number"][-1]) in failed]
    for document in documents:
        if document not in failing:
            await stack["system"].publish(
                DocumentSent.caused_by(
                    event,
                    key=f"{dispatch_id}/{document['id']}",
                    dispatch_id=dispatch_id,
                    mailing_id=mailing_id,
                    document_id=document["id"],
                    document_number=document["document_number"],
                    recipients=[f"client{document['document_number'][-1]}@example.org"],
                )
            )
    failures = [Failure(document_id=d["id"], reason=f"550 no mailbox {d['document_number']}") for d in failing]
    sent = len(documents) - len(failing)
    await stack["system"].publish(
        DispatchCompleted.caused_by(
            event, key=dispatch_id, dispatch_id=dispatch_id, mailing_id=mailing_id,
            sent=sent, failed=len(failing), failures=failures,
        )
    )
    return await stack["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == dispatch_id)


async def documents_in_state(http: httpx.AsyncClient, mailing_id: str, state: str) -> list[dict]:
    answer = await http.get(f"/mailings/{mailing_id}/documents", params={"email_state": state}, headers=TENANT)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


async def test_documents_carry_their_email_state_and_are_listed_by_it(stack):
    event = request(stack["template_id"], [record(n) for n in range(1, 6)])
    completed = await completed_for(stack, event)
    http = stack["http"]
    assert len(await documents_in_state(http, completed.mailing_id, "never_sent")) == 5
    assert await documents_in_state(http, completed.mailing_id, "sent") == []

    regrouped = await dispatch(stack, event, completed.mailing_id, "d1", failed={2, 4})
    not_sent = await documents_in_state(http, regrouped.not_sent_mailing_id, "not_sent")
    assert [(d["document_number"], d["email_state"], d["email_error"]) for d in not_sent] == [
        ("INV-0002", "not_sent", "550 no mailbox INV-0002"),
        ("INV-0004", "not_sent", "550 no mailbox INV-0004"),
    ]
    sent = await wait_until(
        lambda: _all_sent(http, regrouped.sent_mailing_id, 3)
    )
    assert [(d["document_number"], d["sent_to"]) for d in sent] == [
        ("INV-0001", ["client1@example.org"]),
        ("INV-0003", ["client3@example.org"]),
        ("INV-0005", ["client5@example.org"]),
    ]
    assert all(d["sent_at"] for d in sent)
    assert await documents_in_state(http, regrouped.sent_mailing_id, "not_sent") == []


async def _all_sent(http: httpx.AsyncClient, mailing_id: str, count: int) -> list[dict] | None:
    sent = await documents_in_state(http, mailing_id, "sent")
    return sent if len(sent) == count else None


async def test_a_rejected_mailing_shows_why(stack):
    template_id = await stack["upload"]("Checked", validation_required="true")
    completed = await completed_for(stack, request(template_id, [record(1)]))
    http = stack["http"]
    await http.post(f"/mailings/{completed.mailing_id}/reject", headers=TENANT, json={"reason": "wrong amounts"})
    shown = (await http.get(f"/mailings/{completed.mailing_id}", headers=TENANT)).json()
    assert (shown["status"], shown["validation_reason"]) == ("rejected", "wrong amounts")
    assert shown["validated_at"] is not None


async def test_replaced_by_names_only_the_mailings_that_exist(stack):
    event = request(stack["template_id"], [record(1), record(2)])
    completed = await completed_for(stack, event)
    regrouped = await dispatch(stack, event, completed.mailing_id, "d1", failed=set())
    http = stack["http"]
    source = (await http.get(f"/mailings/{completed.mailing_id}", headers=TENANT)).json()
    assert source["replaced_by"] == [regrouped.sent_mailing_id]
    for mailing_id in source["replaced_by"]:
        assert (await http.get(f"/mailings/{mailing_id}", headers=TENANT)).status_code == 200


async def test_re_sends_of_the_not_sent_mailing_join_the_one_sent_mailing(stack):
    event = request(stack["template_id"], [record(n) for n in range(1, 5)])
    completed = await completed_for(stack, event)
    first = await dispatch(stack, event, completed.mailing_id, "d1", failed={2, 3})
    second = await dispatch(stack, event, first.not_sent_mailing_id, "d2", failed={3})
    third = await dispatch(stack, event, second.not_sent_mailing_id, "d3", failed=set())

    assert second.sent_mailing_id == third.sent_mailing_id == first.sent_mailing_id
    assert (second.sent, third.sent, third.not_sent_mailing_id) == (1, 1, None)
    http = stack["http"]
    listing = (await http.get("/mailings", params={"name": "(sent by e-mail)"}, headers=TENANT)).json()["items"]
    sent_mailings = [m for m in listing if m["name"] == "November notices (sent by e-mail)"]
    assert [(m["id"], m["documents"]) for m in sent_mailings] == [(first.sent_mailing_id, 4)]
    documents = (await http.get(f"/mailings/{first.sent_mailing_id}/documents", headers=TENANT)).json()["items"]
    assert [d["document_number"] for d in documents] == ["INV-0001", "INV-0002", "INV-0003", "INV-0004"]
    lines = await stack["merge"].storage.blobs.get(sent_mailings[0]["documents_file_id"])
    assert len(lines.splitlines()) == 4


def three_page_letter() -> bytes:
    letter = Document(io.BytesIO(SAMPLE.read_bytes()))
    for _ in range(2):
        letter.add_page_break()
        letter.add_paragraph("Terms and conditions, continued.")
    out = io.BytesIO()
    letter.save(out)
    return out.getvalue()


async def test_a_word_print_file_is_split_by_real_pages(stack):
    http = stack["http"]
    assert (await http.put("/settings", headers=TENANT, json={"combined_page_limit": 5})).status_code == 200
    template_id = await stack["upload"]("Three pages", docx=three_page_letter())
    completed = await completed_for(stack, request(template_id, [record(n) for n in range(1, 4)]))
    # Three documents of 3 pages each: no part may hold more than 5 pages, so one document a part.
    assert [(p.documents, p.pages) for p in completed.parts] == [(1, 3), (1, 3), (1, 3)]


async def test_handlers_settling_one_mailing_at_once_leave_it_one_whole_documents_file(make_settings, running):
    """The last PDFs of a mailing arriving in several chunks at once: each handler settled the mailing and
    wrote its documents file under the one id fixed by the mailing, deleting the other's chunks half way.
    Dispatch then read a file without its chunks (CorruptGridFile: no chunk #0) and the mailing never went."""
    merge = await running(build_merge(make_settings(MergeSettings)))
    ctx = merge.components
    mailing = a_mailing("pdf")
    mailing.rendering_done(3000)
    await ctx.mailings.create(mailing)
    documents = [MergeDocument.rendered(mailing, n, record(n)) for n in range(3000)]
    for document in documents:
        document.converted(f"pdf-{document.index}", 1)
    await ctx.documents.add_many(documents)

    await asyncio.gather(
        *(complete_if_done(ctx, mailing.id, causation_id=None, rendering_done=False) for _ in range(4))
    )

    settled = await ctx.mailings.get(mailing.id)
    lines = [line async for line in ctx.storage.blobs.lines(settled.documents_file_id, tenant_id="acme")]
    assert len(lines) == 3000
    files = ctx.storage.client[merge.settings.blob_database_name]["fs.files"]
    assert await files.count_documents({"metadata.mailing_id": mailing.id}) == 1  # the losers' files are gone
