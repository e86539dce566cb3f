"""An account's SMTP connections shared by replicas, against the real database and capture server."""

import asyncio
from dataclasses import replace

from publipost_dispatch.domain import Account, Limits, TlsMode
from publipost_dispatch.repository import ConnectionLeaseRepository
from publipost_dispatch.settings import DispatchSettings
from publipost_dispatch.smtp import SmtpPool
from publipost_storage import Storage

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
