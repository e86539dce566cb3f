"""Notes gathered in memory and written at most every `flush_s`, in one batch: a caller seen a thousand times
a second costs one write a minute, not a thousand a second. What is pending is written at close."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from publipost_logging import get_logger
from pymongo.errors import PyMongoError

log = get_logger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class Batched(Generic[K, V]):
    """The latest value noted for each key since the last batch, handed to `write` as one dict."""

    def __init__(self, write: Callable[[dict[K, V]], Awaitable[None]], flush_s: float, what: str) -> None:
        self.write = write
        self.flush_s = flush_s
        self.what = what
        self._pending: dict[K, V] = {}
        self._flushed_at = time.monotonic()
        self._flushing: asyncio.Task[None] | None = None
        self._soon = False

    def note(self, key: K, value: V, *, soon: bool = False) -> None:
        """Keep `value` for the next batch; `soon` writes it without waiting out `flush_s` (a first sighting)."""
        self._pending[key] = value
        self._soon = self._soon or soon
        if (self._soon or time.monotonic() - self._flushed_at >= self.flush_s) and self._flushing is None:
            self._flushing = asyncio.create_task(self.flush())

    async def flush(self) -> None:
        pending, self._pending, self._soon = self._pending, {}, False
        self._flushed_at = time.monotonic()
        try:
            if pending:
                await self.write(pending)
        except PyMongoError as exc:
            # Kept for the next batch: a note may come late, never be lost to a database blip.
            for key, value in pending.items():
                self._pending.setdefault(key, value)
            log.warning("batch not written; kept for the next one", what=self.what, error=str(exc))
        finally:
            self._flushing = None
        if self._soon:  # noted while this batch was being written
            self._flushing = asyncio.create_task(self.flush())

    async def close(self) -> None:
        if self._flushing is not None:
            await self._flushing
        if self._pending:
            await self.flush()
