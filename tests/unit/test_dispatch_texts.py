"""A send's subject and body filled from its document's record through dispatch's composition root (app.build,
repositories, blobs and SMTP in memory): the record's fields and date, never the mailing's name (issue 16,
points 3 and 4). tests/integration/test_dispatch_texts.py holds the same against the real pieces."""

import email
import email.policy
from datetime import UTC, datetime

from publipost_contracts import DispatchCompleted
from publipost_dispatch.accounts import Accounts
from publipost_dispatch.app import build
from publipost_dispatch.domain import DeliveryState, DispatchStatus, EmailText, delivery_id_for, dispatch_key
from publipost_dispatch.model import Delivery, Dispatch
from publipost_dispatch.pdfs import PdfReader
from publipost_dispatch.settings import DispatchSettings

from tests.support import libreoffice_like_pdf
from tests.unit.fakes.dispatch import (
    FakeAccountRepository,
    FakeDeliveryRepository,
    FakeDispatchRepository,
    FakeTenantSendingRepository,
)
from tests.unit.fakes.smtp import FakeSenders, FakeSmtpServer
from tests.unit.fakes.storage import FakeStorage
from tests.unit.in_memory import InMemoryService
from tests.unit.test_dispatch_handlers import send

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
KEY = dispatch_key("acme", "d1")


async def test_a_send_fills_its_records_fields_and_date_and_one_its_record_cannot_fill_fails_naming_it():
    settings = DispatchSettings(smtp_host="smtp.example.test", smtp_from="notices@acme.example")
    storage, server = FakeStorage(), FakeSmtpServer()
    dispatches, deliveries = FakeDispatchRepository(), FakeDeliveryRepository()
    dispatch = Dispatch(
        id=KEY, tenant_id="acme", dispatch_id="d1", mailing_id="m1", correlation_id="c1",
        status=DispatchStatus.SENDING, created_at=NOW, to=["archive@acme.example"], document_type="invoice",
    )  # fmt: skip
    text = EmailText.given("", "Amount due: {amount_due} on <DATEFACT>.", dispatch.document_type)
    dispatch.prepare("Notices (not sent by e-mail)", text, 25)
    await dispatches.create(dispatch)
    records = [{"date": "15/11/2026", "amount_due": "120"}, {"date": "15/11/2026"}]
    for n, fields in enumerate(records):
        pdf = await storage.blobs.put(libreoffice_like_pdf(["Invoice"], {0: 0}), f"{n}.pdf", "application/pdf", tenant_id="acme")
        await deliveries.add(
            Delivery(
                id=delivery_id_for(KEY, f"doc-{n}"), tenant_id="acme", dispatch_key=KEY, dispatch_id="d1", document_id=f"doc-{n}",
                document_number=f"INV-{n}", mailing_id="m1", mailing_name="Notices (not sent by e-mail)", index=n,
                correlation_id="c1", document_type="invoice", state=DeliveryState.QUEUED, created_at=NOW,
                pdf_blob_id=pdf, fields=fields,
            )
        )  # fmt: skip
    service = InMemoryService(
        build(settings), storage=storage, dispatches=dispatches, deliveries=deliveries,
        accounts=Accounts(FakeAccountRepository(), FakeTenantSendingRepository(), settings), senders=FakeSenders(server), pdfs=PdfReader(storage.blobs),
    )  # fmt: skip
    async with service as running:
        for n in range(2):
            await running.deliver(send(n))
        await running.ctx.completions.wait()
        (completed,) = running.published(DispatchCompleted)

    [(_, raw)] = server.received
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "Your invoice INV-0" and "Notices" not in raw.decode()
    assert "Amount due: 120 on 15/11/2026." in message.get_body(("plain",)).get_content()
    assert (completed.sent, completed.failed) == (1, 1)
    assert completed.failures[0].reason == "body: no value for {amount_due} in this document's record"
