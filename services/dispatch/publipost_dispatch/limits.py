"""An account's message rate and daily cap, counted in the database so that every replica shares them.

Permits are taken in batches (as many as sends are waiting in this replica), so the counters cost a
couple of round trips per batch, not per message. A counter read after an increment may include what
other replicas added meanwhile; that only ever grants fewer permits, never more than the limit.
"""

import asyncio
import time
from datetime import UTC, datetime, timedelta

from .domain import Limits
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

    async def take(self) -> None:
        """Wait for a permit to send one e-mail now; DailyCapReached when the account has sent its day's worth."""
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
                    granted = await self._grant(second, self._waiting)
                    if granted > 0:
                        self._second, self._stock = second, granted - 1
                        return
                    await asyncio.sleep(second + 1 - time.time())
        finally:
            self._waiting -= 1

    async def _grant(self, second: int, wanted: int) -> int:
        if self._rate is not None:
            wanted = min(wanted, self._rate)
        granted = wanted
        day = datetime.fromtimestamp(second, UTC).date()
        if self._cap is not None:
            day_id = f"{self._account_id}:day:{day.isoformat()}"
            expires = datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=2)
            total = await self._counters.add(day_id, wanted, expires)
            granted = max(0, min(wanted, self._cap - (total - wanted)))
            if granted < wanted:
                await self._counters.add(day_id, granted - wanted, expires)
            if granted == 0:
                raise DailyCapReached(self._account_id, self._cap)
        if self._rate is not None:
            second_id = f"{self._account_id}:s:{second}"
            total = await self._counters.add(second_id, granted, datetime.fromtimestamp(second + 60, UTC))
            in_time = max(0, min(granted, self._rate - (total - granted)))
            if in_time < granted and self._cap is not None:  # the day gets back what this second cannot use
                await self._counters.add(f"{self._account_id}:day:{day.isoformat()}", in_time - granted, expires)
            granted = in_time
        return granted
