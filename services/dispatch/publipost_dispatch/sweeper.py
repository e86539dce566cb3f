"""A timer of every replica: says the replica is alive and renews the leases of its sends, asks again
for the sends of a replica that went silent (it died mid-way) or lost track of one, and completes
dispatches whose last outcome was stored by a replica that died before announcing the completion."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

from publipost_contracts import DispatchRequested, EmailsRequested, SendRequested, deterministic_id
from publipost_logging import get_logger

from . import completion, emails, fan_out, sending
from .context import DispatchContext
from .domain import COMPLETABLE, MANUAL_SENDS, UNFINISHED, DeliveryState, DispatchStatus
from .model import AlreadyFinal, Delivery, DispatchState

log = get_logger(__name__)

INTERRUPTED = "interrupted while sending (the service stopped); the e-mail may have gone: check before sending again"


class Sweeper:
    def __init__(self, ctx: DispatchContext) -> None:
        self._ctx = ctx
        self._task: asyncio.Task[None] | None = None
        self._reachable_since: float | None = None  # monotonic time of the first beat since the last failure
        self._idle_since: dict[str, float] = {}  # sending dispatches with queued documents and nothing under way

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        ctx = self._ctx
        while True:
            try:
                await ctx.replicas.beat(ctx.senders.holder)
                await ctx.deliveries.renew(ctx.senders.holder, set(ctx.held), ctx.settings.send_lease_s)
                if self._reachable_since is None:
                    self._reachable_since = time.monotonic()
                await self.sweep()
            except Exception:
                log.exception("sweep failed; trying again at the next one")
                self._reachable_since = None
            await asyncio.sleep(ctx.settings.sweep_interval_s)

    def _others_could_beat(self) -> bool:
        """Whether the database has answered this replica for a whole silence: only then is another
        replica's silence (or a lapsed lease) its own and not the database's. Right after an outage no
        replica could beat or renew; their sends, whose outcomes wait to be written, are not lost."""
        since = self._reachable_since
        return since is not None and time.monotonic() - since >= self._ctx.settings.replica_silence_s

    async def sweep(self) -> None:
        ctx = self._ctx
        unfinished = [d async for d in ctx.dispatches.in_status(*UNFINISHED)]
        in_flight = await ctx.deliveries.sending([d.key for d in unfinished] + [MANUAL_SENDS])
        holders = {d.holder for d in in_flight if d.holder is not None} - {ctx.senders.holder}
        for delivery in self._own_orphans(in_flight):
            await self._take_back(delivery)
        if in_flight and self._others_could_beat():
            silent = await ctx.replicas.silent(holders, ctx.settings.replica_silence_s) if holders else set()
            now = datetime.now(UTC)
            for delivery in in_flight:
                lease_until = delivery.lease_until
                if delivery.holder in silent or (lease_until is not None and lease_until < now):
                    await self._take_back(delivery)
        for dispatch in unfinished:
            if dispatch.status in COMPLETABLE and not ctx.completions.busy(dispatch.key):
                await completion.complete_if_done(ctx, dispatch.key)
        await self._fan_out_again_where_stalled()
        busy = {d.dispatch_key for d in in_flight}
        await self._ask_again_for_lost_sends([d for d in unfinished if d.status is DispatchStatus.SENDING], busy)

    def _own_orphans(self, in_flight: list[Delivery]) -> list[Delivery]:
        """This replica's claims that no send of its own holds any more: a send that failed (the database
        gone) before its e-mail went and could not give its claim back. Given back now, not when the lease
        lapses. A claim is one only once its lease is two sweeps old: a claim just made may not be held yet."""
        ctx = self._ctx
        settled = datetime.now(UTC) + timedelta(seconds=ctx.settings.send_lease_s - 2 * ctx.settings.sweep_interval_s)
        return [
            delivery
            for delivery in in_flight
            if delivery.holder == ctx.senders.holder
            and delivery.id not in ctx.held
            and delivery.lease_until is not None
            and delivery.lease_until < settled
        ]

    async def _fan_out_again_where_stalled(self) -> None:
        """A fan-out that stopped moving (its replica died and its message was dead-lettered, say) runs
        again from the request it stored: it inserts what is missing and asks for every queued send."""
        ctx = self._ctx
        before = datetime.now(UTC) - timedelta(seconds=ctx.settings.lost_send_after_s)
        async for dispatch in ctx.dispatches.stalled_fan_outs(before):
            dispatch.progress_at = datetime.now(UTC)
            await ctx.dispatches.save(dispatch, "progress_at")
            log.warning("stalled fan-out run again", dispatch_key=dispatch.id)
            assert dispatch.request is not None  # stalled_fan_outs finds only those that kept it
            if dispatch.request["type"] == EmailsRequested.routing_key:
                await emails.emails_requested(EmailsRequested.model_validate(dispatch.request), ctx)
            else:
                await fan_out.dispatch_requested(DispatchRequested.model_validate(dispatch.request), ctx)

    async def _ask_again_for_lost_sends(self, sending: list[DispatchState], busy: set[str]) -> None:
        """A dispatch with documents queued, none being sent by any replica and no send.requested waiting
        in the queue has lost messages (dead-lettered, purged): once that has held for `lost_send_after_s`,
        each queued document is asked for again (a copy of one still coming finds it claimed)."""
        ctx = self._ctx
        now = time.monotonic()
        idle = [d.key for d in sending if d.key not in busy and await ctx.deliveries.any_queued(d.key)]
        self._idle_since = {key: self._idle_since.get(key, now) for key in idle}
        due = [key for key, since in self._idle_since.items() if now - since >= ctx.settings.lost_send_after_s]
        if not due or await ctx.bus.waiting(SendRequested):
            return
        for key in due:
            self._idle_since[key] = now
            asked = 0
            async for delivery in ctx.deliveries.in_state(key, (DeliveryState.QUEUED,)):
                asked += 1
                await ctx.bus.publish(
                    SendRequested(
                        event_id=deterministic_id("send.lost", delivery.id, "queued", now),
                        tenant_id=delivery.tenant_id,
                        correlation_id=delivery.correlation_id,
                        dispatch_id=delivery.dispatch_id,
                        document_id=delivery.document_id,
                    )
                )
            log.warning("lost sends asked for again", dispatch_key=key, documents=asked)

    async def _take_back(self, delivery: Delivery) -> None:
        ctx = self._ctx
        if delivery.kind == "manual":  # nobody will ask again, and the e-mail may have gone
            try:
                delivery.record(DeliveryState.UNCERTAIN, reason=INTERRUPTED)
            except AlreadyFinal:  # taken back earlier in this sweep
                return
            if await ctx.deliveries.finish(delivery):
                await sending.announce(
                    ctx, delivery, DeliveryState.UNCERTAIN, reason=INTERRUPTED, addressing=None, message_id=None
                )
            return
        if not await ctx.deliveries.take_back(delivery.id, delivery.holder):
            return  # another replica's sweep was first
        log.warning("send of a silent replica asked again", document_id=delivery.document_id)
        await ctx.bus.publish(
            SendRequested(
                event_id=deterministic_id("send.lost", delivery.id, delivery.attempts),
                tenant_id=delivery.tenant_id,
                correlation_id=delivery.correlation_id,
                dispatch_id=delivery.dispatch_id,
                document_id=delivery.document_id,
            )
        )
