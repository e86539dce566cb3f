"""Dispatch when things go wrong, against the real pieces: a server that takes the message and never
confirms it, the database gone in the middle of the sends. What must hold: nothing sent twice,
every document with one final outcome, the dispatch completed and its mailing regrouped."""

import asyncio
import email
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from publipost_contracts import DispatchCompleted, MailingRegrouped
from publipost_localstack.processes import free_port
from publipost_localstack.smtp_capture import CaptureHandler

from tests.integration.test_dispatch_product import account, completed, deliveries
from tests.integration.test_dispatch_service import TENANT, dispatch, flow, merge_mailing, record  # noqa: F401
from tests.support import TcpProxy, wait_until

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
async def database(infra):
    """The database behind a relay the test cuts: out of reach for this test's services only."""
    async with TcpProxy(infra.mongodb_url.removeprefix("mongodb://").rstrip("/")) as proxy:
        yield proxy


@pytest.fixture
def make_settings(make_settings, database):
    def make(settings_class, **overrides):
        return make_settings(settings_class, **{"mongodb_url": f"mongodb://127.0.0.1:{database.port}/", **overrides})

    return make


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


class CutAfterMessage(CaptureHandler):
    """Takes every message, and on the `nth` cuts the database before answering 250: the e-mail is out,
    its outcome cannot be written."""

    def __init__(self, mail_dir: Path, nth: int, cut) -> None:
        super().__init__(mail_dir)
        self.nth, self.cut, self.count = nth, cut, 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        self.count += 1
        if self.count == self.nth:
            self.cut()
        return answer


@pytest.mark.dispatch_settings(send_lease_s=4.0, sweep_interval_s=0.5, replica_silence_s=3.0)
async def test_an_outcome_the_database_cannot_take_is_kept_and_the_e_mail_never_sent_again(
    flow,  # noqa: F811
    database,
    tmp_path,
):
    loop = asyncio.get_running_loop()
    outage_started = threading.Event()

    def cut() -> None:  # on the SMTP server's thread: the database is gone before the 250 goes back
        loop.call_soon_threadsafe(lambda: (database.cut(), outage_started.set()))
        outage_started.wait(5)

    handler = CutAfterMessage(tmp_path / "cut-mail", nth=2, cut=cut)
    server = Controller(handler, hostname="127.0.0.1", port=free_port())
    server.start()
    try:
        created = await flow["dispatch_http"].post("/accounts", headers=TENANT, json=account(server.port))
        records = [record(n, f"client{n}@example.test") for n in range(1, 7)]
        mailing = await merge_mailing(flow, records)
        request = await dispatch(flow, mailing.mailing_id, account_id=created.json()["id"])
        await asyncio.to_thread(outage_started.wait, 60)
        await asyncio.sleep(8)  # the database out of reach for longer than a send's lease
        database.restore()
        outcome: DispatchCompleted = await completed(flow, request.dispatch_id)
        await asyncio.sleep(5)  # sends asked again late would arrive by now
    finally:
        server.stop()

    assert (outcome.sent, outcome.failed) == (6, 0)
    shown = await deliveries(flow, request.dispatch_id)
    assert [d["state"] for d in shown] == ["sent"] * 6
    received = [email.message_from_bytes(p.read_bytes()) for p in sorted((tmp_path / "cut-mail").glob("*.eml"))]
    numbers = sorted(m["Subject"].split()[1] for m in received)
    assert numbers == [f"INV-{n:04d}" for n in range(1, 7)], [(d["document_number"], d["attempts"]) for d in shown]  # every document once, none twice
    by_number = {d["document_number"]: d for d in shown}
    assert {m["Message-ID"] for m in received} == {d["message_id"] for d in by_number.values()}


@pytest.mark.dispatch_settings(smtp_timeout_s=1.0)
async def test_an_immediate_send_to_a_hanging_server_answers_at_once_and_ends_uncertain(flow, silent_server):  # noqa: F811
    port, server = silent_server
    http = flow["dispatch_http"]
    created = await http.post("/accounts", headers=TENANT, json=account(port))
    mailing = await merge_mailing(flow, [record(1, "one@example.test")])
    documents = (await flow["merge_http"].get(f"/mailings/{mailing.mailing_id}/documents", headers=TENANT)).json()

    sent = await http.post(
        "/sends",
        headers=TENANT,
        json={
            "mailing_id": mailing.mailing_id,
            "document_id": documents["items"][0]["id"],
            "to": ["someone@example.test"],
            "account_id": created.json()["id"],
        },
    )

    assert sent.status_code == 202, sent.text  # answered before the server was even asked
    assert sent.json()["state"] in ("queued", "sending")

    async def final():
        shown = (await http.get(sent.headers["Location"], headers=TENANT)).json()
        return shown if shown["state"] not in ("queued", "sending") else None

    done = await wait_until(final)
    assert done["state"] == "uncertain" and "may have been delivered" in done["reason"]
    assert len(server.received) == 1


@pytest.mark.dispatch_settings(prefetch=1, lost_send_after_s=2.0, sweep_interval_s=0.5)
async def test_sends_whose_messages_were_lost_are_asked_for_again(flow, infra, namespace):  # noqa: F811
    slow = account(flow["mailbox"].port, limits={"connections": 1, "rate_per_s": 1, "daily_cap": 1000})
    created = await flow["dispatch_http"].post("/accounts", headers=TENANT, json=slow)
    mailing = await merge_mailing(flow, [record(n, f"client{n}@example.test") for n in range(1, 7)])
    request = await dispatch(flow, mailing.mailing_id, account_id=created.json()["id"])
    await wait_until(lambda: len(flow["mailbox"].messages()) >= 1)

    # The send.requested still in the queue are lost (an operator purged it, say).
    connection = await aio_pika.connect(infra.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{namespace}.dispatch.send.requested", passive=True)
        purged = await queue.purge()
    assert purged.message_count > 0

    outcome: DispatchCompleted = await completed(flow, request.dispatch_id)
    assert (outcome.sent, outcome.failed) == (6, 0)
    numbers = sorted(email.message_from_bytes(m)["Subject"].split()[1] for m in flow["mailbox"].messages())
    assert numbers == [f"INV-{n:04d}" for n in range(1, 7)]


@pytest.mark.dispatch_settings(prefetch=1, sweep_interval_s=0.5)
async def test_a_claim_its_replica_lost_track_of_is_given_back_at_a_sweep_not_when_its_lease_lapses(flow):  # noqa: F811
    slow = account(flow["mailbox"].port, limits={"connections": 1, "rate_per_s": 1, "daily_cap": 1000})
    created = await flow["dispatch_http"].post("/accounts", headers=TENANT, json=slow)
    mailing = await merge_mailing(flow, [record(n, f"client{n}@example.test") for n in range(1, 5)])
    request = await dispatch(flow, mailing.mailing_id, account_id=created.json()["id"])
    await wait_until(lambda: len(flow["mailbox"].messages()) >= 1)

    # What a send leaves when the database goes after its claim and before its e-mail, and its release
    # fails too: the claim stays this replica's, its lease (60 s) running, and no send holds it. Its
    # send.requested, when it comes, finds it claimed.
    ctx = flow["dispatch"].components
    orphan = await ctx.deliveries.collection.find_one_and_update(
        {"dispatch_id": request.dispatch_id, "state": "queued", "document_number": "INV-0004"},
        {"$set": {"state": "sending", "holder": ctx.senders.holder, "lease_until": datetime.now(UTC) + timedelta(seconds=55)}},
    )
    assert orphan is not None

    outcome = await flow["tap"].next(DispatchCompleted, lambda e: e.dispatch_id == request.dispatch_id, timeout=25)
    assert (outcome.sent, outcome.failed) == (4, 0)
    numbers = sorted(email.message_from_bytes(m)["Subject"].split()[1] for m in flow["mailbox"].messages())
    assert numbers == ["INV-0001", "INV-0002", "INV-0003", "INV-0004"]


MERGE_RELAY_PORT = free_port()


@pytest.mark.dispatch_settings(
    merge_url=f"http://127.0.0.1:{MERGE_RELAY_PORT}", lost_send_after_s=2.0, sweep_interval_s=0.5
)
async def test_a_fan_out_whose_message_was_dead_lettered_runs_again(flow):  # noqa: F811
    merge_address = str(flow["merge_http"].base_url).removeprefix("http://").rstrip("/")
    mailing = await merge_mailing(flow, [record(n, f"client{n}@example.test") for n in (1, 2, 3)])
    async with TcpProxy(merge_address, port=MERGE_RELAY_PORT) as merge_relay:
        merge_relay.cut()  # dispatch cannot reach merge: the fan-out fails until its message is dead-lettered
        request = await dispatch(flow, mailing.mailing_id)
        await wait_until(lambda: merge_relay.accepted >= 4, timeout=60)
        await asyncio.sleep(3)
        merge_relay.restore()

        outcome: DispatchCompleted = await completed(flow, request.dispatch_id)
    assert (outcome.sent, outcome.failed) == (3, 0)
    numbers = sorted(email.message_from_bytes(m)["Subject"].split()[1] for m in flow["mailbox"].messages())
    assert numbers == ["INV-0001", "INV-0002", "INV-0003"]
