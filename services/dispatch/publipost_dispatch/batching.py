"""Group commit for the database calls every send makes.

Each send claims its delivery, reads its PDF and stores its outcome: alone, that is one round trip
each, and the database's per-request cost, not the work, bounds the rate. A `Coalescer` sends the
requests of every send that arrived while the previous call was in flight as one call, so batches
grow with the load and a lone send waits for nothing.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self, run: Callable[[list[T]], Awaitable[Sequence[R]]], max_batch: int = 64, linger_s: float = 0.0
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        result: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, result))
        if not self._draining:
            self._draining = True
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return await result

    async def _drain(self) -> None:
        try:
            while self._pending:
                if self._linger_s and len(self._pending) < self._max_batch:
                    await asyncio.sleep(self._linger_s)  # let the sends close behind join this call
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                try:
                    results = await self._run([item for item, _ in batch])
                except Exception as exc:  # noqa: BLE001 - handed to each caller of the call, which decides
                    for _, result in batch:
                        if not result.done():
                            result.set_exception(exc)
                    continue
                for (_, result), value in zip(batch, results, strict=True):
                    if not result.done():
                        result.set_result(value)
        finally:
            self._draining = False
