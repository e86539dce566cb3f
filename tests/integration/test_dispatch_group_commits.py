"""The group commits of dispatch against the real database, each command it receives counted."""

import asyncio
import os
import signal
from collections import Counter
from datetime import UTC, datetime

import pytest
from publipost_dispatch.domain import DeliveryState, DispatchStatus
from publipost_dispatch.model import Delivery, Dispatch
from publipost_dispatch.repository import DeliveryRepository, DispatchRepository
from publipost_dispatch.settings import DispatchSettings
from publipost_localstack.processes import free_port, start_secantus
from publipost_storage import Storage
from pymongo.monitoring import CommandListener


class Commands(CommandListener):
    """(command, collection) of every command the client sends."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()

    def started(self, event) -> None:
        target = event.command.get(event.command_name)
        self.seen[(event.command_name, target if isinstance(target, str) else "-")] += 1

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


@pytest.fixture
async def storage(make_settings, running):
    settings = make_settings(DispatchSettings)
    commands = Commands()
    storage = Storage(settings.mongodb_url, settings.database_name, settings.blob_database_name, event_listeners=[commands])
    storage.commands = commands
    yield storage
    await storage.client.drop_database(settings.database_name)
    await storage.close()


def dispatch(key: str) -> Dispatch:
    return Dispatch(
        id=key, tenant_id="acme", dispatch_id=key, mailing_id="m1", correlation_id="c1",
        status=DispatchStatus.SENDING, created_at=datetime.now(UTC),
    )  # fmt: skip


async def test_sends_that_find_their_dispatch_stale_share_one_read(storage):
    """Every send reads its dispatch (at most a second old); when it went stale, each of the sends in
    flight used to read it on its own: 64 reads where one does."""
    dispatches = DispatchRepository(storage.db)
    await dispatches.create(dispatch("acme:d1"))
    storage.commands.seen.clear()
    first = asyncio.ensure_future(dispatches.recent("acme:d1"))
    await asyncio.sleep(0)  # its read is under way when the others find the dispatch stale
    seen = await asyncio.gather(first, *(dispatches.recent("acme:d1") for _ in range(19)))
    assert {d.status for d in seen} == {"sending"}
    assert storage.commands.seen == {("find", "dispatches"): 1}


async def test_errors_of_many_sends_are_counted_in_one_write_and_one_read(storage):
    dispatches = DispatchRepository(storage.db)
    await dispatches.create(dispatch("acme:d2"))
    storage.commands.seen.clear()
    counts = await asyncio.gather(*(dispatches.count_error("acme:d2") for _ in range(5)))
    assert max(counts) == 5 and all(1 <= n <= 5 for n in counts)
    assert storage.commands.seen == {("update", "dispatches"): 1, ("find", "dispatches"): 1}
    assert (await dispatches.get("acme:d2")).errors == 5


async def test_the_sends_about_to_go_read_whether_their_dispatch_still_sends_at_once(storage):
    """Each e-mail asks right before it goes (a pause must stop it): the sends asking together share a read."""
    dispatches = DispatchRepository(storage.db)
    await dispatches.create(dispatch("acme:d4"))
    paused = dispatch("acme:d5")
    paused.pause("paused after 2 SMTP errors")
    await dispatches.create(paused)
    storage.commands.seen.clear()
    asked = await asyncio.gather(*(dispatches.takes_sends(key) for key in ["acme:d4", "acme:d5"] * 5 + ["acme:d9"]))
    assert asked == [True, False] * 5 + [False]  # an unknown dispatch wants nothing sent
    assert storage.commands.seen == {("find", "dispatches"): 1}


def delivery(n: int, state: DeliveryState = DeliveryState.SENDING) -> Delivery:
    return Delivery(
        id=f"acme:d3:{n}", dispatch_key="acme:d3", dispatch_id="d3", tenant_id="acme", document_id=f"doc-{n}",
        document_number=f"INV-{n}", index=n, state=state, attempts=0 if state == DeliveryState.QUEUED else 1,
        terms=["*", "status=queued"], created_at=datetime.now(UTC),
    )  # fmt: skip


def outcome(n: int, state: DeliveryState, **fields: str) -> Delivery:
    """The delivery as the handler that sent it holds it, its outcome recorded."""
    sent = delivery(n)
    sent.record(state, **fields)
    return sent


async def test_the_outcomes_of_the_sends_in_flight_are_one_write_and_each_is_stored_once(storage):
    deliveries = DeliveryRepository(storage.db)
    await deliveries.ensure_indexes()
    await deliveries.add_many([delivery(n) for n in range(10)] + [delivery(10, DeliveryState.SENT)])
    storage.commands.seen.clear()

    def sent(n: int) -> Delivery:
        return outcome(n, DeliveryState.SENT, smtp_reply=f"250 ok {n}", message_id=f"<{n}@publipost.test>")

    stored = await asyncio.gather(
        *(deliveries.finish(sent(n)) for n in range(10)),
        deliveries.finish(outcome(0, DeliveryState.FAILED, reason="a second handler")),  # the same delivery again
        deliveries.finish(outcome(10, DeliveryState.FAILED, reason="already sent")),
    )
    assert stored == [True] * 10 + [False, False]
    # One write for the group; a read only because some of its outcomes were refused.
    assert storage.commands.seen == {("update", "deliveries"): 1, ("find", "deliveries"): 1}
    for n in range(10):
        doc = await deliveries.get(f"acme:d3:{n}")
        assert (doc.state, doc.message_id, doc.smtp_reply) == ("sent", f"<{n}@publipost.test>", f"250 ok {n}")
        assert "status=sent" in doc.terms
        assert doc.lease_until is None and doc.finished_at is not None and doc.attempts == 1
    assert (await deliveries.get("acme:d3:10")).state == "sent"
    assert (await deliveries.finish(outcome(1, DeliveryState.FAILED))) is False  # final is final


async def test_the_claims_of_the_sends_in_flight_share_their_round_trips(storage):
    deliveries = DeliveryRepository(storage.db)
    await deliveries.ensure_indexes()
    await deliveries.add_many([delivery(n, DeliveryState.QUEUED) for n in range(20, 30)])
    storage.commands.seen.clear()
    claimed = await asyncio.gather(
        *(deliveries.claim_and_get(f"acme:d3:{n}", "replica-a", 60) for n in range(20, 30)),
        deliveries.claim_and_get("acme:d3:20", "replica-a", 60),  # a redelivered copy of a send in flight
    )
    assert [d.id for d in claimed[:10]] == [f"acme:d3:{n}" for n in range(20, 30)]
    assert all(d.state == "sending" and d.holder == "replica-a" and d.attempts == 1 for d in claimed[:10])
    assert claimed[10] is None
    assert storage.commands.seen == {("update", "deliveries"): 1, ("find", "deliveries"): 1}


async def test_a_send_given_back_untried_is_queued_with_its_attempt_taken_off(storage):
    deliveries = DeliveryRepository(storage.db)
    await deliveries.ensure_indexes()
    await deliveries.add_many([delivery(n, DeliveryState.QUEUED) for n in (30, 31)])
    await asyncio.gather(*(deliveries.claim_and_get(f"acme:d3:{n}", "replica-a", 60) for n in (30, 31)))
    storage.commands.seen.clear()
    await asyncio.gather(
        deliveries.give_back("acme:d3:30", "replica-a"),
        deliveries.give_back("acme:d3:31", "replica-b"),  # not its holder: nothing changes
    )
    assert storage.commands.seen == {("update", "deliveries"): 1}
    given_back, held = await deliveries.get("acme:d3:30"), await deliveries.get("acme:d3:31")
    assert (given_back.state, given_back.holder, given_back.attempts, given_back.last_error) == ("queued", None, 0, None)
    assert (held.state, held.holder, held.attempts) == ("sending", "replica-a", 1)


async def test_claims_and_outcomes_of_the_same_moment_are_one_group_commit(storage):
    """The sends starting and the sends ending share one update: two used to go, one for each."""
    deliveries = DeliveryRepository(storage.db)
    await deliveries.ensure_indexes()
    await deliveries.add_many([delivery(n, DeliveryState.QUEUED) for n in range(40, 45)])
    await deliveries.add_many([delivery(n) for n in range(45, 50)])
    storage.commands.seen.clear()
    answers = await asyncio.gather(
        *(deliveries.claim_and_get(f"acme:d3:{n}", "replica-a", 60) for n in range(40, 45)),
        *(deliveries.finish(outcome(n, DeliveryState.FAILED, reason="550 no such user")) for n in range(45, 50)),
        deliveries.release("acme:d3:44", "replica-b", "not this replica's to give back"),
    )
    assert [a.id for a in answers[:5]] == [f"acme:d3:{n}" for n in range(40, 45)]
    assert answers[5:10] == [True] * 5
    # The release did not apply (another holder): the outcomes are read back to tell which were stored.
    assert storage.commands.seen == {("update", "deliveries"): 1, ("find", "deliveries"): 2}
    assert (await deliveries.get("acme:d3:44")).holder == "replica-a"


async def test_outcomes_the_database_acknowledged_survive_its_crash(tmp_path):
    """SecantusDB, like mongod without `j`, acknowledges a write before its log reaches the disk: killed
    with kill -9 it came back without the last tens of milliseconds of writes. An outcome lost that way left
    its delivery `sending`, and the sweep sent the e-mail again (tests/faults: 6 to 22 e-mails twice per
    database crash). Group commits are journaled: what the database acknowledged, it still has."""
    port = free_port()
    database = start_secantus(port, tmp_path / "data", tmp_path, name="secantus-crash")
    storage = Storage(f"mongodb://127.0.0.1:{port}/", "crash_dispatch", "crash_blobs")
    try:
        deliveries = DeliveryRepository(storage.db)
        await deliveries.ensure_indexes()
        await deliveries.add_many([delivery(n) for n in range(300)])
        for n in range(0, 300, 10):  # groups of ten, as sends end
            await asyncio.gather(
                *(deliveries.finish(outcome(k, DeliveryState.SENT)) for k in range(n, n + 10))
            )
        os.killpg(database.pid(), signal.SIGKILL)  # the moment the last group is acknowledged
        while database.pid() is not None:
            await asyncio.sleep(0.01)
        database = start_secantus(port, tmp_path / "data", tmp_path, name="secantus-crash")
        states = Counter([d["state"] async for d in storage.db.deliveries.find({}, {"state": 1})])
        assert states == {"sent": 300}
    finally:
        await storage.close()
        database.stop()
