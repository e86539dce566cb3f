"""The timer that drives `handlers.tick`, with a liveness the readiness probe can trust."""

import asyncio
import time

from publipost_logging import get_logger

from . import handlers
from .context import SchedulerContext

log = get_logger(__name__)


class Ticker:
    def __init__(self, ctx: SchedulerContext) -> None:
        self.ctx = ctx
        self._task: asyncio.Task[None] | None = None
        self.last_success = 0.0

    async def start(self) -> None:
        await self._pass()  # readiness knows the outcome of a first pass as soon as the service is up
        self._task = asyncio.create_task(self._run(), name="scheduler-ticker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.settings.tick_interval_s)
            await self._pass()

    async def _pass(self) -> None:
        try:
            await handlers.tick(self.ctx)
            self.last_success = time.monotonic()
        except Exception:
            log.exception("scheduler tick failed")

    async def healthy(self) -> bool:
        """Ready when the timer runs and its last pass succeeded recently."""
        recent = time.monotonic() - self.last_success < max(10 * self.ctx.settings.tick_interval_s, 10.0)
        return self._task is not None and not self._task.done() and recent
