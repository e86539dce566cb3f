"""Dispatch when things go wrong, against the real pieces: a server that takes the message and never
confirms it, the database gone in the middle of the sends. What must hold: nothing sent twice,
every document with one final outcome, the dispatch completed and its mailing regrouped."""

import asyncio
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from publipost_contracts import DispatchCompleted, MailingRegrouped
from publipost_localstack.processes import free_port

from tests.integration.test_dispatch_product import account, completed, deliveries
from tests.integration.test_dispatch_service import TENANT, dispatch, flow, merge_mailing, record  # noqa: F401

pytestmark = pytest.mark.slow


class SilentAfterData:
    """Reads each whole message, then says nothing for `silence_s` (a server stuck after the final dot)."""

    def __init__(self, silence_s: float) -> None:
        self.silence_s = silence_s
        self.received: list[bytes] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.received.append(envelope.original_content or b"")
        await asyncio.sleep(self.silence_s)
        return "250 2.0.0 accepted, too late"


@pytest.fixture
def silent_server():
    handler = SilentAfterData(silence_s=4.0)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, handler
    controller.stop()


@pytest.mark.dispatch_settings(smtp_timeout_s=1.0)
async def test_a_message_the_server_never_confirms_is_uncertain_and_never_sent_again(flow, silent_server):  # noqa: F811
    port, server = silent_server
    created = await flow["dispatch_http"].post("/accounts", headers=TENANT, json=account(port))
    records = [record(n, f"client{n}@example.test") for n in (1, 2, 3)]
    mailing = await merge_mailing(flow, records)

    request = await dispatch(flow, mailing.mailing_id, account_id=created.json()["id"])
    outcome: DispatchCompleted = await completed(flow, request.dispatch_id)

    assert (outcome.sent, outcome.failed, outcome.uncertain) == (0, 3, 3)
    shown = await deliveries(flow, request.dispatch_id)
    assert [(d["state"], d["attempts"]) for d in shown] == [("uncertain", 1)] * 3
    assert all("may have been delivered" in d["reason"] for d in shown)
    await asyncio.sleep(server.silence_s + 2)  # a retry would have transmitted again by now
    numbers = sorted(m.split(b"INV-", 1)[1][:4] for m in server.received)
    assert numbers == [b"0001", b"0002", b"0003"]  # each document went out once
    regrouped = await flow["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == request.dispatch_id)
    assert (regrouped.sent, regrouped.not_sent) == (0, 3)
    listed = await flow["dispatch_http"].get("/history", headers=TENANT, params={"status": "uncertain"})
    assert sorted(e["document"]["document_number"] for e in listed.json()["items"]) == ["INV-0001", "INV-0002", "INV-0003"]
