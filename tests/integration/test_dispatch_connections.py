"""An account's SMTP connections shared by replicas, against the real database and capture server."""

import asyncio
from dataclasses import replace

import pytest
from aiosmtpd.controller import Controller
from publipost_dispatch.domain import Account, Limits, TlsMode
from publipost_dispatch.repository import ConnectionLeaseRepository, SendCounterRepository
from publipost_dispatch.senders import Senders
from publipost_dispatch.settings import DispatchSettings
from publipost_dispatch.smtp import SmtpPool
from publipost_localstack.processes import free_port
from publipost_storage import Storage
from pymongo.errors import AutoReconnect

from tests.conftest import Mailbox
from tests.support import TcpProxy

MESSAGE = b"From: a@publipost.test\r\nTo: b@example.test\r\nSubject: hello\r\n\r\nHello.\r\n"


def account(mailbox) -> Account:
    return Account(
        account_id="shared", version=1, host=mailbox.host, port=mailbox.port, tls=TlsMode.NONE, login=None,
        password=None, from_address="a@publipost.test", from_name=None, reply_to=None,
        limits=Limits(connections=2), pause_after_errors=10,
    )


async def test_a_replica_busy_with_every_connection_gives_one_to_a_replica_that_waits(make_settings, mailbox):
    """Before sharing, the first replica kept both connections for as long as it had sends, and the
    second replica's sends waited until the first one's ran dry. Then, a connection given back for
    being above the share was opened again at once by the first replica's next send, over and over."""
    storage = Storage.for_service(make_settings(DispatchSettings))
    leases = ConnectionLeaseRepository(storage.db)
    await leases.ensure_indexes()
    proxy = await TcpProxy(f"{mailbox.host}:{mailbox.port}").__aenter__()  # counts the first one's connections
    first = SmtpPool(
        replace(account(mailbox), port=proxy.port), timeout_s=10, leases=leases, holder="replica-1", lease_s=30
    )
    second = SmtpPool(account(mailbox), timeout_s=10, leases=leases, holder="replica-2", lease_s=30)
    sent_by_first = 0
    second_done = asyncio.Event()

    async def keep_sending() -> None:
        nonlocal sent_by_first
        while not second_done.is_set() and sent_by_first < 3_000:
            await first.send(MESSAGE, "a@publipost.test", ["b@example.test"], ["b@example.test"])
            sent_by_first += 1

    try:
        senders = [asyncio.create_task(keep_sending()) for _ in range(2)]
        while sent_by_first < 20:  # both connections are the first replica's
            await asyncio.sleep(0.01)
        reply = await second.send(MESSAGE, "a@publipost.test", ["b@example.test"], ["b@example.test"])
        second_done.set()
        await asyncio.gather(*senders)
    finally:
        await first.close()
        await second.close()
        await storage.close()
        await proxy.__aexit__()

    assert reply.reply.startswith("250")
    assert sent_by_first < 3_000, "the second replica got a connection only once the first stopped sending"
    assert proxy.accepted <= 3, f"the first replica opened {proxy.accepted} connections for 2 slots"


class OneSlotFree:
    """The account's leases when another replica holds every slot but one: counts this replica's asks."""

    def __init__(self) -> None:
        self.asks = 0
        self.taken = False

    async def acquire(self, account_id: str, slots: int, holder: str, lease_s: float) -> int | None:
        self.asks += 1
        if self.taken:
            return None
        self.taken = True
        return 0

    async def wait(self, account_id: str, holder: str, for_s: float) -> None:
        pass

    async def others_waiting(self, account_id: str, holder: str) -> int:
        return 0

    async def release(self, account_id: str, slot: int, holder: str) -> None:
        self.taken = False


async def test_a_replica_sending_on_its_connection_does_not_ask_for_another_twice_a_second(mailbox):
    """Each ask costs the database a read and a write: two busy replicas asked every 0.5 s, for as long
    as they sent, for a slot the other held."""
    leases = OneSlotFree()
    pool = SmtpPool(replace(account(mailbox)), timeout_s=10, leases=leases, holder="replica-1", lease_s=30)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    until = loop.time() + 1.6

    async def keep_sending() -> None:
        while loop.time() < until:
            await pool.send(MESSAGE, "a@publipost.test", ["b@example.test"], ["b@example.test"])

    try:
        await asyncio.gather(keep_sending(), keep_sending())
    finally:
        await pool.close()
    assert leases.asks <= 2, f"{leases.asks} asks for a second connection in 1.6 s"


class Slots:
    """An account's leases with `free` slots and nobody else waiting; `failures` asks fail first, as they
    do with the database out of reach."""

    def __init__(self, free: int, failures: int = 0) -> None:
        self.free = set(range(free))
        self.failures = failures

    async def acquire(self, account_id: str, slots: int, holder: str, lease_s: float) -> int | None:
        if self.failures:
            self.failures -= 1
            raise AutoReconnect("connection refused")
        return self.free.pop() if self.free else None

    async def wait(self, account_id: str, holder: str, for_s: float) -> None:
        pass

    async def others_waiting(self, account_id: str, holder: str) -> int:
        return 0

    async def release(self, account_id: str, slot: int, holder: str) -> None:
        self.free.add(slot)


class SlowFirstMessage:
    """Holds the first message's final dot for a while before answering; answers the others at once."""

    def __init__(self) -> None:
        self.messages = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages += 1
        if self.messages == 1:
            await asyncio.sleep(3)
        return "250 2.0.0 accepted"


async def test_a_send_cancelled_mid_transaction_gives_its_connection_back():
    """A send is cancelled when the broker channel of its message closes. Its connection stayed counted
    open: at the account's limit, every later send waited for it forever (a 10 s broker cut of dispatch
    stopped it for good, tests/faults)."""
    server = Controller(SlowFirstMessage(), hostname="127.0.0.1", port=free_port())
    server.start()
    slots = Slots(free=1)
    pool = SmtpPool(
        replace(account(Mailbox("127.0.0.1", server.port, None)), limits=Limits(connections=1)),  # type: ignore[arg-type]
        timeout_s=10, leases=slots, holder="replica-1", lease_s=30,  # type: ignore[arg-type]
    )
    try:
        first = asyncio.create_task(pool.send(MESSAGE, "a@publipost.test", ["b@example.test"], ["b@example.test"]))
        await asyncio.sleep(0.5)  # its message is with the server, the answer not yet
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        reply = await asyncio.wait_for(
            pool.send(MESSAGE, "a@publipost.test", ["c@example.test"], ["c@example.test"]), timeout=5
        )
    finally:
        await pool.close()
        server.stop()
    assert reply.reply.startswith("250")


async def test_a_slot_the_database_could_not_give_is_not_counted_open(mailbox):
    """Asking for a connection slot with the database out of reach failed the send, and the connection
    it was about to open stayed counted: after as many failures as the account has connections (one
    here), every send waited forever, long after the database was back (a database crash stopped dispatch, tests/faults)."""
    slots = Slots(free=1, failures=1)
    pool = SmtpPool(
        replace(account(mailbox), limits=Limits(connections=1)), timeout_s=10, leases=slots, holder="replica-1", lease_s=30  # type: ignore[arg-type]
    )
    try:
        with pytest.raises(AutoReconnect):
            await pool.send(MESSAGE, "a@publipost.test", ["b@example.test"], ["b@example.test"])
        reply = await asyncio.wait_for(
            pool.send(MESSAGE, "a@publipost.test", ["b@example.test"], ["b@example.test"]), timeout=5
        )
    finally:
        await pool.close()
    assert reply.reply.startswith("250")


async def test_a_slot_whose_release_the_database_missed_lapses_and_serves_again(make_settings, mailbox, infra):
    """A connection closed while the database was out of reach could not give its slot back, and the
    replica's upkeep renewed every slot it had ever held: that one never lapsed. After as many misses as
    the account has connections, every later send of the replica waited forever (a database outage in
    the middle of a dispatch left it sending for good, tests/integration/test_dispatch_faults.py)."""
    async with TcpProxy(infra.mongodb_url.removeprefix("mongodb://").rstrip("/")) as database:
        settings = make_settings(DispatchSettings, mongodb_url=f"mongodb://127.0.0.1:{database.port}/")
        storage = Storage.for_service(settings)
        leases = ConnectionLeaseRepository(storage.db)
        await leases.ensure_indexes()
        senders = Senders(
            leases, SendCounterRepository(storage.db), timeout_s=10, lease_s=1.0, idle_s=60, trusted_account_id="shared"
        )
        sender = senders.for_account(replace(account(mailbox), limits=Limits(connections=1)))
        await senders.start()
        try:
            await sender.pool.send(MESSAGE, "a@publipost.test", ["b@example.test"], ["b@example.test"])
            database.cut()
            await sender.pool.close_idle(0.0)  # the connection is closed; its slot stays taken in the database
            database.restore()
            reply = await asyncio.wait_for(
                sender.pool.send(MESSAGE, "a@publipost.test", ["c@example.test"], ["c@example.test"]), timeout=10
            )
        finally:
            await senders.stop()
            await senders.close()
            await storage.close()
    assert reply.reply.startswith("250")
