"""Whether a dispatch is complete, asked once per short while and never while this replica still sends it."""


import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from publipost_logging import get_logger

log = get_logger(__name__)


class CompletionCheck:
    """Whether a dispatch is complete is asked once per short while after outcomes arrive, not once per
    outcome, and not at all while this replica still sends documents of it: a check costs queries, and
    a dispatch with a send in flight here is not complete. The last of those sends to end asks."""

    DELAY_S = 0.1

    def __init__(self, check: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.check = check  # complete_if_done, set by the bootstrap once the context exists
        self._scheduled: dict[str, asyncio.Task[None]] = {}
        self._in_flight: Counter[str] = Counter()
        self._deferred: set[str] = set()

    @contextmanager
    def sending(self, key: str) -> Iterator[None]:
        """Around one send of the dispatch `key` by this replica, from its claim to its outcome."""
        self._in_flight[key] += 1
        try:
            yield
        finally:
            self._in_flight[key] -= 1
            if self._in_flight[key] == 0:
                del self._in_flight[key]
                if key in self._deferred:
                    self._deferred.discard(key)
                    self.soon(key)

    def busy(self, key: str) -> bool:
        """Whether this replica is sending documents of the dispatch `key` (it is not complete, then)."""
        return self._in_flight[key] > 0

    def soon(self, key: str) -> None:
        if key not in self._scheduled:
            self._scheduled[key] = asyncio.get_running_loop().create_task(self._check(key))

    async def _check(self, key: str) -> None:
        await asyncio.sleep(self.DELAY_S)
        del self._scheduled[key]  # outcomes stored from now on schedule a check of their own
        if self.busy(key):
            self._deferred.add(key)  # asked when the last of them ends
            return
        assert self.check is not None
        try:
            await self.check(key)
        except Exception:  # the sweep checks every sending dispatch again
            log.exception("completion check failed", dispatch_key=key)

    async def wait(self) -> None:
        """Let scheduled checks finish (at shutdown, after the last sends)."""
        await asyncio.gather(*self._scheduled.values(), return_exceptions=True)
