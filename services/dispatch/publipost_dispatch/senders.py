"""One sending pipeline per account (listmonk's shape): its connection pool and its shared limits, kept
while the account is unchanged and replaced when it is edited."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from publipost_logging import get_logger
from publipost_outbound import OutboundPolicy

from .accounts import DEFAULT_ACCOUNT_ID
from .domain import Account, Limits
from .limits import SendPermits
from .metrics import EMAILS, SMTP_SECONDS
from .repository import ConnectionLeaseRepository, SendCounterRepository
from .smtp import SmtpAccepted, SmtpPool, SmtpRefused, SmtpUnavailable, SmtpUncertain

log = get_logger(__name__)


@dataclass
class Sender:
    account: Account
    pool: SmtpPool
    permits: SendPermits

    async def send(
        self,
        message: bytes,
        recipients: list[str],
        required: list[str],
        still_wanted: Callable[[], Awaitable[bool]] | None = None,
    ) -> SmtpAccepted:
        """Wait for a permit of the account's rate and one of its connections, then send, unless
        `still_wanted` (asked while waiting for a permit, and after both waits) says no: SendWithdrawn."""
        await self.permits.take(still_wanted)
        account = self.account.account_id
        started = time.perf_counter()
        try:
            accepted = await self.pool.send(message, self.account.from_address, recipients, required, still_wanted)
        except SmtpUncertain:
            EMAILS.labels("uncertain", account).inc()
            raise
        except SmtpRefused as refused:
            EMAILS.labels("failed" if refused.code >= 500 else "deferred", account).inc()
            raise
        except SmtpUnavailable:
            EMAILS.labels("deferred", account).inc()
            raise
        finally:
            SMTP_SECONDS.labels(account).observe(time.perf_counter() - started)
        EMAILS.labels("sent", account).inc()
        return accepted


class Senders:
    def __init__(
        self,
        leases: ConnectionLeaseRepository,
        counters: SendCounterRepository,
        *,
        timeout_s: float,
        lease_s: float,
        idle_s: float,
        outbound: OutboundPolicy | None = None,
        trusted_account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        self.holder = f"replica-{uuid.uuid4()}"  # whose connection slots these are, in the database
        self._leases = leases
        self._counters = counters
        self._timeout_s = timeout_s
        self._lease_s = lease_s
        self._idle_s = idle_s
        # Where a tenant's accounts may connect (publipost_outbound); the service's own account, from the
        # environment, is the platform team's choice and is not checked.
        self.outbound = outbound or OutboundPolicy()
        self._trusted_account_id = trusted_account_id
        self._senders: dict[str, Sender] = {}
        self._retiring: set[SmtpPool] = set()  # an edited account's old pool, finishing its sends
        self._task: asyncio.Task[None] | None = None

    def for_account(self, account: Account) -> Sender:
        sender = self._senders.get(account.account_id)
        if sender is None or sender.account.version != account.version:
            if sender is not None:  # edited: the old pool finishes what it holds and closes when idle
                asyncio.get_running_loop().create_task(self._retire(sender.pool))
            sender = Sender(
                account,
                self._pool(account, account),
                SendPermits(self._counters, account.account_id, account.limits),
            )
            self._senders[account.account_id] = sender
        return sender

    async def _retire(self, pool: SmtpPool) -> None:
        self._retiring.add(pool)
        try:
            await pool.close()
        finally:
            self._retiring.discard(pool)

    def probe_pool(self, account: Account) -> SmtpPool:
        """A pool of its own for a connection test, under a slot of its own: a test never waits for, nor
        takes, one of the connections sends are using."""
        return self._pool(account, replace(account, account_id=f"{account.account_id}:test", limits=Limits(connections=1)))

    def _pool(self, account: Account, pooled: Account) -> SmtpPool:
        return SmtpPool(
            pooled,
            timeout_s=self._timeout_s,
            leases=self._leases,
            holder=self.holder,
            lease_s=self._lease_s,
            outbound=None if account.account_id == self._trusted_account_id else self.outbound,
        )

    # A timer of the service: keeps this replica's connection slots alive and hands idle ones back.
    async def start(self) -> None:
        self._task = asyncio.create_task(self._maintain())

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(min(self._idle_s, self._lease_s / 3))
            try:
                for sender in list(self._senders.values()):
                    await sender.pool.close_idle(self._idle_s)
                pools = [*(sender.pool for sender in self._senders.values()), *self._retiring]
                # The slots of open connections only: one whose release failed (the database out of reach)
                # was renewed too, so it never lapsed, and after as many as the account has connections
                # every later send waited forever.
                await self._leases.renew(self.holder, [slot for pool in pools for slot in pool.held_slots()], self._lease_s)
            except Exception:
                log.exception("connection upkeep failed; trying again")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def close(self) -> None:
        for sender in self._senders.values():
            await sender.pool.close()
