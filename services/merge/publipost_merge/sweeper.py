"""A timer: finds mailings whose PDFs stopped coming and asks for them again.

A render.requested or its answer can be lost: dead-lettered after the database was out of reach for
longer than the retries, or published while render-pdf's queue did not exist yet. Without this the
mailing stays `converting` until a person notices; with it, it moves on `stall_after_s` later."""

import asyncio
from datetime import UTC, datetime, timedelta

from publipost_logging import get_logger

from . import handlers
from .context import MergeContext
from .domain import MailingStatus

log = get_logger(__name__)


class StalledMailings:
    def __init__(self, ctx: MergeContext) -> None:
        self._ctx = ctx
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._ctx.settings.sweep_interval_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed; trying again at the next one")

    async def sweep(self) -> None:
        ctx = self._ctx
        before = datetime.now(UTC) - timedelta(seconds=ctx.settings.stall_after_s)
        async for mailing in ctx.mailings.stalled(MailingStatus.CONVERTING, before):
            await handlers.resume_conversion(ctx, mailing)
