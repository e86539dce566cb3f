"""dispatch's handlers through its composition root (app.build: its consumers, their wiring), its
repositories, blobs and SMTP server in memory, on FastStream's TestRabbitBroker: the pause and completion
rules run in milliseconds. tests/integration holds the same flows against the real pieces."""

import asyncio
from datetime import UTC, datetime

from publipost_contracts import DispatchCompleted, DispatchPaused, DocumentSent, SendRequested
from publipost_dispatch.accounts import Accounts
from publipost_dispatch.app import build
from publipost_dispatch.domain import DeliveryState, DispatchStatus, EmailText, delivery_id_for, dispatch_key
from publipost_dispatch.model import Delivery, Dispatch
from publipost_dispatch.pdfs import PdfReader
from publipost_dispatch.settings import DispatchSettings

from tests.support import libreoffice_like_pdf, wait_until
from tests.unit.fakes.dispatch import (
    FakeAccountRepository,
    FakeDeliveryRepository,
    FakeDispatchRepository,
    FakeTenantSendingRepository,
)
from tests.unit.fakes.smtp import FakeSenders, FakeSmtpServer
from tests.unit.fakes.storage import FakeStorage
from tests.unit.in_memory import InMemoryService

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
KEY = dispatch_key("acme", "d1")


async def dispatch_service(documents: int, server: FakeSmtpServer, pause_after_errors: int = 25) -> InMemoryService:
    settings = DispatchSettings(smtp_host="smtp.example.test", smtp_from="notices@acme.example")
    storage = FakeStorage()
    dispatches, deliveries = FakeDispatchRepository(), FakeDeliveryRepository()
    dispatch = Dispatch(
        id=KEY, tenant_id="acme", dispatch_id="d1", mailing_id="m1", correlation_id="c1",
        status=DispatchStatus.SENDING, created_at=NOW, to=["archive@acme.example"],
    )  # fmt: skip
    dispatch.prepare("Notices", EmailText("Invoice {document_number}", "Please find it attached."), pause_after_errors)
    await dispatches.create(dispatch)
    for n in range(documents):
        pdf = await storage.blobs.put(
            libreoffice_like_pdf([f"Invoice {n}"], {0: 0}), f"{n}.pdf", "application/pdf", tenant_id="acme"
        )
        await deliveries.add(
            Delivery(
                id=delivery_id_for(KEY, f"doc-{n}"), tenant_id="acme", dispatch_key=KEY, dispatch_id="d1", document_id=f"doc-{n}",
                document_number=f"INV-{n}", mailing_id="m1", mailing_name="Notices", index=n, correlation_id="c1",
                state=DeliveryState.QUEUED, created_at=NOW, pdf_blob_id=pdf,
            )
        )  # fmt: skip
    service = build(settings)
    return InMemoryService(
        service,
        storage=storage,
        dispatches=dispatches,
        deliveries=deliveries,
        accounts=Accounts(FakeAccountRepository(), FakeTenantSendingRepository(), settings),
        senders=FakeSenders(server),
        pdfs=PdfReader(storage.blobs),
    )


def send(n: int) -> SendRequested:
    return SendRequested(tenant_id="acme", correlation_id="c1", dispatch_id="d1", document_id=f"doc-{n}")


async def test_the_last_send_completes_the_dispatch_with_its_counts():
    server = FakeSmtpServer()
    async with await dispatch_service(3, server) as dispatch:
        for n in range(3):
            await dispatch.deliver(send(n))
        await dispatch.ctx.completions.wait()

        (completed,) = dispatch.published(DispatchCompleted)
        assert (completed.sent, completed.failed, completed.failures) == (3, 0, [])
        assert len(dispatch.published(DocumentSent)) == 3
        assert [recipients for recipients, _ in server.received] == [["archive@acme.example"]] * 3
        stored = await dispatch.ctx.dispatches.get(KEY)
        assert (stored.status, stored.sent) == (DispatchStatus.COMPLETED, 3)


async def test_smtp_refusals_pause_the_dispatch_once_at_its_threshold_and_the_rest_wait_queued():
    server = FakeSmtpServer(refuse_with=(550, "5.1.1 mailbox unknown"))
    async with await dispatch_service(5, server, pause_after_errors=2) as dispatch:
        for n in range(5):
            await dispatch.deliver(send(n))

        (paused,) = dispatch.published(DispatchPaused)
        assert paused.reason.startswith("paused after 2 SMTP errors; last: 550 5.1.1 mailbox unknown")
        assert server.refused == 2  # nothing was sent once paused
        assert (paused.sent, paused.failed, paused.queued) == (0, 2, 3)
        states = [(await dispatch.ctx.deliveries.get(delivery_id_for(KEY, f"doc-{n}"))).state for n in range(5)]
        assert states == [DeliveryState.FAILED] * 2 + [DeliveryState.QUEUED] * 3
        assert (await dispatch.ctx.dispatches.get(KEY)).status is DispatchStatus.PAUSED
        assert dispatch.published(DispatchCompleted) == []


async def test_a_send_claimed_before_the_pause_is_given_back_untried():
    """Sends claimed at once wait for their permit (an account's rate): the two first are refused and pause
    the dispatch; the third, its permit given after the pause, does not go and returns to the queue."""
    server = FakeSmtpServer(refuse_with=(550, "5.1.1 mailbox unknown"), permits=asyncio.Semaphore(0))
    async with await dispatch_service(4, server, pause_after_errors=2) as dispatch:
        sends = asyncio.gather(*(dispatch.deliver(send(n)) for n in range(3)))
        await wait_until(lambda: server.waiting == 3)  # all three claimed, waiting for a permit
        server.permits.release()
        await wait_until(lambda: server.refused == 1)
        server.permits.release()
        await wait_until(lambda: dispatch.published(DispatchPaused))
        server.permits.release()
        await sends
        await dispatch.ctx.completions.wait()

        assert (server.refused, server.received) == (2, [])  # nothing went after the pause
        (paused,) = dispatch.published(DispatchPaused)
        assert (paused.failed, paused.queued) == (2, 2)  # the one waiting for its permit, and doc-3
        deliveries = [await dispatch.ctx.deliveries.get(delivery_id_for(KEY, f"doc-{n}")) for n in range(4)]
        assert sorted(d.state for d in deliveries) == [DeliveryState.FAILED] * 2 + [DeliveryState.QUEUED] * 2
        assert {d.attempts for d in deliveries if d.state is DeliveryState.QUEUED} == {0}  # untried
        assert (await dispatch.ctx.dispatches.get(KEY)).status is DispatchStatus.PAUSED
        assert dispatch.published(DispatchCompleted) == []
