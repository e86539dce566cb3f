"""The merge service against the real broker, database and template service (DOCX output: no LibreOffice)."""

import io
import uuid
from pathlib import Path

import httpx
import pytest
from docx import Document
from publipost_bus import Bus
from publipost_contracts import (
    DispatchCompleted,
    DocumentsRendered,
    Failure,
    MailingRegrouped,
    MergeCompleted,
    MergeRejected,
    MergeRequested,
)
from publipost_merge.app import build as build_merge
from publipost_merge.settings import MergeSettings
from publipost_settings import ServiceSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings

from tests.support import EventTap, wait_until
from tests.support import sample_record as record

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"
TENANT = {"X-Tenant-Id": "acme"}


@pytest.fixture
async def stack(make_settings, running, serve_http, infra, namespace):
    template = build_template(make_settings(TemplateSettings))
    await running(template)
    template_url = await serve_http(template)
    merge = build_merge(make_settings(MergeSettings, template_url=template_url))
    await running(merge)
    system = Bus(make_settings(ServiceSettings, service_name="crm"), publishes=[MergeRequested, DispatchCompleted, DocumentsRendered])
    await system.start()
    async with httpx.AsyncClient(base_url=template_url) as http:
        uploaded = await http.post(
            "/templates", headers=TENANT, data={"name": "Notice"}, files={"file": ("l.docx", SAMPLE.read_bytes())}
        )
        template_id = uploaded.json()["id"]
    merge_http = httpx.AsyncClient(transport=httpx.ASGITransport(merge.http_app()), base_url="http://merge")
    async with EventTap(infra.rabbitmq_url, namespace, MergeCompleted, MergeRejected, MailingRegrouped) as tap:
        yield {"system": system, "template_id": template_id, "merge": merge, "http": merge_http, "tap": tap}
    await merge_http.aclose()
    await system.stop()


def request(template_id: str, records: list[dict[str, object]], **extra: object) -> MergeRequested:
    return MergeRequested(
        tenant_id="acme",
        correlation_id=str(uuid.uuid4()),
        request_id=str(uuid.uuid4()),
        template_id=template_id,
        name="November notices",
        records=records,
        custom_fields={"signatory": "Jane Manager"},
        output="docx",
        **extra,
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


async def test_a_record_that_fails_to_render_fails_alone(stack):
    event = request(stack["template_id"], [record(1), record(2, amount_due="not a number"), record(3)])
    await stack["system"].publish(event)
    completed = await stack["tap"].next(MergeCompleted, lambda e: e.request_id == event.request_id)
    assert (completed.status, completed.documents, completed.failed) == ("ready", 3, 1)
    documents = (await stack["http"].get(f"/mailings/{completed.mailing_id}/documents", headers=TENANT)).json()
    failed = [d for d in documents["items"] if d["status"] == "failed"]
    assert [d["record_id"] for d in failed] == ["r2"] and "rendering failed" in failed[0]["error"]


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
