"""An account's message rate and daily cap, counted in the database so that every replica shares them.

Permits are taken in batches (as many as sends are waiting in this replica), and the day's and the
second's counters are written together, so the counters cost two round trips per batch, not per message. A counter read after an increment may include what
other replicas added meanwhile; that only ever grants fewer permits, never more than the limit.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from .domain import Limits, SendWithdrawn
from .repository import SendCounterRepository


class DailyCapReached(Exception):
    def __init__(self, account_id: str, cap: int) -> None:
        super().__init__(f"account {account_id!r} reached its daily cap of {cap} e-mails")
        self.cap = cap


class SendPermits:
    def __init__(self, counters: SendCounterRepository, account_id: str, limits: Limits) -> None:
        self._counters = counters
        self._account_id = account_id
        self._rate = limits.rate_per_s
        self._cap = limits.daily_cap
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._second = -1
        self._stock = 0

    async def take(self, still_wanted: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Wait for a permit to send one e-mail now; DailyCapReached when the account has sent its day's worth.
        A send that finds this second's permits spent asks `still_wanted` before asking for more, and again
        after each wait for the next second: SendWithdrawn when it says no (its dispatch paused meanwhile),
        so the sends queued behind the limit leave at once rather than one a second."""
        if self._rate is None and self._cap is None:
            return
        self._waiting += 1
        try:
            async with self._lock:
                while True:
                    second = int(time.time())
                    if second == self._second and self._stock > 0:
                        self._stock -= 1
                        return
                    if still_wanted is not None and not await still_wanted():
                        raise SendWithdrawn()
                    granted = await self._grant(second, self._waiting)
                    if granted > 0:
                        self._second, self._stock = second, granted - 1
                        return
                    await asyncio.sleep(second + 1 - time.time())
        finally:
            self._waiting -= 1

    async def _grant(self, second: int, wanted: int) -> int:
        """Take `wanted` from the day's and the second's counters together, then give back what either
        could not grant: two round trips, three when a limit is reached."""
        if self._rate is not None:
            wanted = min(wanted, self._rate)
        day = datetime.fromtimestamp(second, UTC).date()
        day_id = f"{self._account_id}:day:{day.isoformat()}"
        second_id = f"{self._account_id}:s:{second}"
        taken: dict[str, tuple[int, datetime]] = {}
        if self._cap is not None:
            taken[day_id] = (wanted, datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=2))
        if self._rate is not None:
            taken[second_id] = (wanted, datetime.fromtimestamp(second + 60, UTC))
        totals = await self._counters.add_and_read(taken)
        in_day = wanted if self._cap is None else max(0, min(wanted, self._cap - (totals[day_id] - wanted)))
        granted = in_day if self._rate is None else max(0, min(in_day, self._rate - (totals[second_id] - wanted)))
        if granted < wanted:
            await self._counters.add({counter_id: (granted - wanted, expires) for counter_id, (_, expires) in taken.items()})
        if in_day == 0:
            raise DailyCapReached(self._account_id, self._cap or 0)
        return granted
