"""Dispatch against the real pieces: RabbitMQ, the database, LibreOffice, the SMTP capture server.

A mailing is produced by the real template, merge and render-pdf services, then dispatched.
"""

import email
import email.policy
import uuid
from pathlib import Path

import httpx
import pytest
from publipost_auth import Role
from publipost_bus import Bus
from publipost_contracts import (
    DeliveryRecorded,
    DispatchCompleted,
    DispatchPaused,
    DispatchRequested,
    DocumentSent,
    MailingRegrouped,
    MergeCompleted,
    MergeRequested,
    SendRequested,
)
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.sealing import PasswordSeal
from publipost_dispatch.settings import DispatchSettings
from publipost_merge.app import build as build_merge
from publipost_merge.settings import MergeSettings
from publipost_recipient_directory.app import build as build_directory
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_settings import ServiceSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings

from tests.credentials import credentials
from tests.support import EventTap, sample_record, wait_until

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"
TENANT = credentials("acme")
ACCOUNT_KEY = PasswordSeal.new_key()


def record(n: int, email_address: str | None) -> dict[str, object]:
    return sample_record(n, email=email_address)


@pytest.fixture
async def flow(request, make_settings, running, serve_http, infra, namespace, mailbox):
    """The services a dispatch needs, each for real, plus an internal system publishing on the bus."""
    marker = request.node.get_closest_marker("dispatch_settings")
    template = await running(build_template(make_settings(TemplateSettings)))
    template_url = await serve_http(template)
    merge = build_merge(make_settings(MergeSettings, template_url=template_url, render_chunk_size=4))
    await running(merge)
    merge_url = await serve_http(merge)
    await running(build_render(make_settings(RenderPdfSettings)))

    def dispatch_service(**overrides: object):
        defaults = {
            "merge_url": merge_url,
            "template_url": template_url,
            "smtp_host": mailbox.host,
            "smtp_port": mailbox.port,
            "account_key": ACCOUNT_KEY,
        }
        settings = make_settings(DispatchSettings, **{**defaults, **overrides})
        return build_dispatch(settings)

    dispatch = await running(dispatch_service(**(marker.kwargs if marker else {})))
    directory = await running(build_directory(make_settings(RecipientDirectorySettings)))
    system = Bus(
        make_settings(ServiceSettings, service_name="crm"),
        publishes=[MergeRequested, DispatchRequested, SendRequested],
    )
    await system.start()
    async with httpx.AsyncClient(base_url=template_url) as http:
        uploaded = await http.post(
            "/templates",
            headers=TENANT,
            data={"name": "Notice", "custom_fields": "signatory"},
            files={"file": ("l.docx", SAMPLE.read_bytes())},
        )
    tap = EventTap(
        infra.rabbitmq_url,
        namespace,
        MergeCompleted,
        DispatchCompleted,
        MailingRegrouped,
        DispatchPaused,
        DeliveryRecorded,
        DocumentSent,
    )
    async with tap:
        yield {
            "system": system,
            "template_id": uploaded.json()["id"],
            "tap": tap,
            "dispatch": dispatch,
            "merge_http": httpx.AsyncClient(base_url=merge_url),
            "dispatch_http": httpx.AsyncClient(transport=httpx.ASGITransport(dispatch.http_app()), base_url="http://d"),
            "mailbox": mailbox,
            "dispatch_service": dispatch_service,
            "template_url": template_url,
            "template_http": httpx.AsyncClient(base_url=template_url),
            "directory_http": httpx.AsyncClient(
                transport=httpx.ASGITransport(directory.http_app()), base_url="http://r"
            ),
        }
    await system.stop()


async def merge_mailing(flow, records, output="pdf") -> MergeCompleted:
    event = MergeRequested(
        tenant_id="acme",
        correlation_id=str(uuid.uuid4()),
        request_id=str(uuid.uuid4()),
        template_id=flow["template_id"],
        name="Notices",
        records=records,
        custom_fields={"signatory": "Jane Manager"},
        output=output,
    )
    await flow["system"].publish(event)
    return await flow["tap"].next(MergeCompleted, lambda e: e.request_id == event.request_id, timeout=90)


async def dispatch(flow, mailing_id: str, **options: object) -> DispatchRequested:
    event = DispatchRequested(
        tenant_id="acme",
        correlation_id=str(uuid.uuid4()),
        dispatch_id=str(uuid.uuid4()),
        mailing_id=mailing_id,
        subject="Invoice {document_number} - {client_name}",
        body="Dear {client_name},\nyour document is attached.\n",
        **options,
    )
    await flow["system"].publish(event)
    return event


def messages(flow) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(raw, policy=email.policy.default) for raw in flow["mailbox"].messages()]


async def test_a_mailing_with_refused_and_missing_addresses_is_sent_and_regrouped(flow):
    records = [record(1, "one@example.test"), record(2, "two@reject.test"), record(3, None), record(4, "four@example.test")]
    mailing = await merge_mailing(flow, records)
    request = await dispatch(flow, mailing.mailing_id)

    completed = await flow["tap"].next(DispatchCompleted, lambda e: e.dispatch_id == request.dispatch_id, timeout=60)
    assert (completed.sent, completed.failed) == (2, 2)
    reasons = sorted(f.reason for f in completed.failures)
    assert reasons[0].startswith("550") and "two@reject.test" in reasons[0]
    assert reasons[1].startswith("no address")

    sent = messages(flow)
    assert sorted(m["To"] for m in sent) == ["four@example.test", "one@example.test"]
    one = next(m for m in sent if m["To"] == "one@example.test")
    assert one["Subject"] == "Invoice INV-0001 - Client Number1"
    attachment = next(one.iter_attachments())
    assert attachment.get_filename() == "INV-0001.pdf"
    assert attachment.get_content().startswith(b"%PDF")

    regrouped = await flow["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == request.dispatch_id)
    assert (regrouped.sent, regrouped.not_sent) == (2, 2)
    not_sent = (await flow["merge_http"].get(f"/mailings/{regrouped.not_sent_mailing_id}", headers=TENANT)).json()
    assert not_sent["name"] == "Notices (not sent by e-mail)" and not_sent["documents"] == 2

    view = (await flow["dispatch_http"].get(f"/dispatches/{request.dispatch_id}", headers=TENANT)).json()
    assert (view["status"], view["sent"], view["failed"], view["total"]) == ("completed", 2, 2, 4)


async def test_failures_past_what_the_event_lists_reach_merge_as_a_file_and_every_one_is_regrouped(flow, monkeypatch):
    """Past FAILURES_LISTED, dispatch.completed names a file of every document not sent; merge regroups by
    it, not by paging dispatch's API (which it no longer calls)."""
    monkeypatch.setattr(DispatchCompleted, "FAILURES_LISTED", 2)
    records = [record(n, None) for n in range(1, 6)] + [record(6, "six@example.test")]
    mailing = await merge_mailing(flow, records)
    request = await dispatch(flow, mailing.mailing_id)

    completed = await flow["tap"].next(DispatchCompleted, lambda e: e.dispatch_id == request.dispatch_id, timeout=60)
    assert (completed.sent, completed.failed, len(completed.failures)) == (1, 5, 2)
    assert completed.failures_truncated and completed.failures_file_id is not None

    regrouped = await flow["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == request.dispatch_id)
    assert (regrouped.sent, regrouped.not_sent) == (1, 5)
    url = f"/mailings/{regrouped.not_sent_mailing_id}/documents"
    not_sent = (await flow["merge_http"].get(url, headers=TENANT)).json()["items"]
    assert sorted(d["document_number"] for d in not_sent) == [f"INV-{n:04d}" for n in range(1, 6)]


async def test_a_redelivered_send_of_a_sent_document_is_not_sent_again(flow):
    mailing = await merge_mailing(flow, [record(1, "one@example.test")])
    request = await dispatch(flow, mailing.mailing_id)
    await flow["tap"].next(DispatchCompleted, lambda e: e.dispatch_id == request.dispatch_id, timeout=60)
    deliveries = flow["dispatch_http"]
    url = f"/dispatches/{request.dispatch_id}/deliveries"
    document_id = (await deliveries.get(url, headers=TENANT)).json()["items"][0]["document_id"]

    # A fresh event id: only the delivery's state in the database can tell it was sent.
    again = SendRequested.caused_by(request, dispatch_id=request.dispatch_id, document_id=document_id)
    await flow["system"].publish(again)
    await wait_until(lambda: _handled(flow, again), timeout=30)
    page = (await deliveries.get(url, headers=TENANT)).json()
    assert [(d["state"], d["attempts"]) for d in page["items"]] == [("sent", 1)]
    assert len(messages(flow)) == 1
    # FastStream's middleware counts what it sees; Publipost's counter says what became of each message.
    metrics = (await flow["dispatch_http"].get("/metrics")).text
    assert 'faststream_received_messages_total{app_name="publipost-dispatch"' in metrics


async def test_a_send_redelivered_after_its_outcome_was_stored_announces_the_outcome_again(flow):
    """A handler that stored an outcome and died, or lost its broker connection, before announcing it
    left the document without delivery.recorded and document.sent: the owning system never learnt that
    its invoice went (tests/faults: 12 to 26 outcomes unannounced after a kill -9 of dispatch or a 10 s
    cut of its broker link). The redelivered send finds the outcome stored and announces it again, under
    the same event ids, which a consumer that has them skips."""
    mailing = await merge_mailing(flow, [record(1, "one@example.test")])
    request = await dispatch(flow, mailing.mailing_id)
    await flow["tap"].next(DispatchCompleted, lambda e: e.dispatch_id == request.dispatch_id, timeout=60)
    url = f"/dispatches/{request.dispatch_id}/deliveries"
    document_id = (await flow["dispatch_http"].get(url, headers=TENANT)).json()["items"][0]["document_id"]

    def announced(event_type):
        return [e for e in flow["tap"].received if isinstance(e, event_type) and e.document_id == document_id]

    await wait_until(lambda: announced(DocumentSent), timeout=10)
    again = SendRequested.caused_by(request, dispatch_id=request.dispatch_id, document_id=document_id)
    await flow["system"].publish(again)
    await wait_until(lambda: len(announced(DocumentSent)) == 2 and len(announced(DeliveryRecorded)) == 2, timeout=30)
    for event_type in (DocumentSent, DeliveryRecorded):
        assert len({e.event_id for e in announced(event_type)}) == 1
    assert announced(DeliveryRecorded)[1].outcome == "sent"
    assert announced(DocumentSent)[1].recipients == ["one@example.test"]
    assert len(messages(flow)) == 1


async def _handled(flow, event) -> bool:
    """What /metrics says: the send consumer has handled a second message, the duplicate."""
    queue = flow["dispatch"].bus.topology.consumer_queue("dispatch", event.routing_key).name
    metrics = (await flow["dispatch_http"].get("/metrics")).text
    handled = f'publipost_messages_total{{consumer="{queue}",outcome="handled"}}'
    return any(line.startswith(handled) and float(line.split()[-1]) >= 2 for line in metrics.splitlines())


async def test_a_docx_only_mailing_is_refused_with_a_clear_reason(flow):
    mailing = await merge_mailing(flow, [record(1, "one@example.test")], output="docx")
    request = await dispatch(flow, mailing.mailing_id)

    async def refused():
        response = await flow["dispatch_http"].get(f"/dispatches/{request.dispatch_id}", headers=TENANT)
        return response.status_code == 200 and response.json()["status"] == "refused" and response.json()

    view = await wait_until(refused)
    assert "only PDF mailings can be e-mailed" in view["reason"]
    assert messages(flow) == []


@pytest.mark.dispatch_settings(sender_domain="mail.publipost.test")
async def test_the_default_account_sends_from_the_tenant_s_prefix_on_the_platform_s_domain(flow):
    admin = credentials("acme", Role.ADMIN)
    chosen = await flow["dispatch_http"].put("/settings/sending", headers=admin, json={"sender_prefix": "acme.billing"})
    assert chosen.status_code == 200, chosen.text
    mailing = await merge_mailing(flow, [record(1, "one@example.test")])
    request = await dispatch(flow, mailing.mailing_id)

    completed = await flow["tap"].next(DispatchCompleted, lambda e: e.dispatch_id == request.dispatch_id, timeout=60)
    assert completed.sent == 1
    (sent,) = messages(flow)
    assert sent["From"].addresses[0].addr_spec == "acme.billing@mail.publipost.test"
