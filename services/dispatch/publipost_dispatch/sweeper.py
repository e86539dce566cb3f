"""A timer of every replica: asks again for sends whose replica died mid-way, and completes dispatches
whose last outcome was stored by a replica that died before announcing the completion."""

import asyncio

from publipost_contracts import SendRequested, deterministic_id
from publipost_logging import get_logger

from . import handlers
from .context import DispatchContext
from .domain import DeliveryState, DispatchStatus

log = get_logger(__name__)

INTERRUPTED = "interrupted while sending (the service stopped); the e-mail may have gone: check before sending again"


class Sweeper:
    def __init__(self, ctx: DispatchContext) -> None:
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
        async for delivery in ctx.deliveries.lost():
            if delivery.get("kind") == "manual":  # its HTTP caller got an error; nobody will ask again
                if await ctx.deliveries.finish(delivery["_id"], DeliveryState.FAILED, {"reason": INTERRUPTED}):
                    await handlers.announce(
                        ctx, delivery, DeliveryState.FAILED, reason=INTERRUPTED, addressing=None, message_id=None
                    )
                continue
            # Every replica sweeps; the same id per (delivery, attempt) makes their requests one.
            await ctx.bus.publish(
                SendRequested(
                    event_id=deterministic_id("send.lost", delivery["_id"], delivery["attempts"]),
                    tenant_id=delivery["tenant_id"],
                    correlation_id=delivery["correlation_id"],
                    dispatch_id=delivery["dispatch_id"],
                    document_id=delivery["document_id"],
                )
            )
        async for dispatch in ctx.dispatches.in_status(DispatchStatus.SENDING):
            await handlers.complete_if_done(ctx, dispatch["_id"])
