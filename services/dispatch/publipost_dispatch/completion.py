"""How a dispatch ends: paused (too many SMTP errors, the daily cap) or completed once every document has
its final outcome."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from publipost_contracts import (
    DispatchCompleted,
    DispatchPaused,
    Failure,
    deterministic_id,
)
from publipost_logging import get_logger

from .context import DispatchContext
from .domain import NOT_SENT, PENDING, DeliveryState, DispatchStatus
from .metrics import PAUSES
from .model import Dispatch, NotSending

log = get_logger(__name__)


async def pause(ctx: DispatchContext, key: str, reason: str) -> None:
    """Stop sending: those queued wait in the database until a person resumes, and the sends claimed but
    not yet at the server give theirs back (sending.py). Of the sends that find too many errors at once,
    the one whose move is stored announces the pause, with what is left; when nothing is, the completion
    check that follows the pausing send's outcome completes the dispatch."""
    dispatch = await ctx.dispatches.get(key)  # fresh: the one a send read may be a second old
    if dispatch is None:
        return
    try:
        dispatch.pause(reason)
    except NotSending:
        return
    if not await ctx.dispatches.move(dispatch, DispatchStatus.SENDING, "reason"):
        return
    PAUSES.inc()
    log.warning("dispatch paused", dispatch_id=dispatch.dispatch_id, reason=reason)
    await ctx.bus.publish(
        DispatchPaused(
            event_id=deterministic_id("dispatch.paused", key, dispatch.resumptions),
            tenant_id=dispatch.tenant_id,
            correlation_id=dispatch.correlation_id,
            dispatch_id=dispatch.dispatch_id,
            mailing_id=dispatch.mailing_id,
            segment_id=dispatch.segment_id,
            reason=reason,
            errors=dispatch.errors,
            sent=await ctx.deliveries.count(key, (DeliveryState.SENT,)),
            failed=await ctx.deliveries.count(key, (DeliveryState.FAILED,)),
            queued=await ctx.deliveries.count(key, PENDING),  # the sends under way at the pause give theirs back
            requested_by=dispatch.requester,
        )
    )


async def complete_if_done(ctx: DispatchContext, key: str) -> None:
    """When every document has its final outcome, announce the dispatch's completion (once per dispatch id)."""
    if await ctx.deliveries.any_pending(key):  # first: while sends go on, the check costs this query alone
        return
    dispatch = await ctx.dispatches.get(key)
    # A paused dispatch whose every document has its outcome (the last sends in flight at the pause
    # ended) has nothing left to resume: it completes, and its mailing is regrouped.
    if dispatch is None or not dispatch.completable:
        return
    sent = await ctx.deliveries.count(key, (DeliveryState.SENT,))
    failed = await ctx.deliveries.count(key, NOT_SENT)
    uncertain = await ctx.deliveries.count(key, (DeliveryState.UNCERTAIN,))
    failures = [
        d.failure() async for d in ctx.deliveries.in_state(key, NOT_SENT, limit=DispatchCompleted.FAILURES_LISTED)
    ]
    failures_file_id = await _failures_file(ctx, dispatch) if failed > len(failures) else None
    # Published before the status moves: a crash in between leaves the dispatch "sending", and the sweep
    # publishes the same event (same id) again rather than never.
    await ctx.bus.publish(
        DispatchCompleted(
            event_id=deterministic_id("dispatch.completed", key),
            tenant_id=dispatch.tenant_id,
            correlation_id=dispatch.correlation_id,
            dispatch_id=dispatch.dispatch_id,
            mailing_id=dispatch.mailing_id,
            segment_id=dispatch.segment_id,
            sent=sent,
            failed=failed,
            failures=failures,
            failures_truncated=failed > len(failures),
            failures_file_id=failures_file_id,
            uncertain=uncertain,
            regroup=dispatch.regroup,
            requested_by=dispatch.requester,
        )
    )
    was = dispatch.status
    dispatch.complete(sent, failed, uncertain, datetime.now(UTC))
    if was is not DispatchStatus.COMPLETED:
        await ctx.dispatches.move(dispatch, was, "sent", "failed", "uncertain", "completed_at")


async def _failures_file(ctx: DispatchContext, dispatch: Dispatch) -> str:
    """Every document not sent, a Failure a line, for the consumers of dispatch.completed (merge regroups by
    it): more than an event holds. Written once per dispatch: a completion run again, or at the same time,
    announces the file recorded first."""
    key = dispatch.id
    if dispatch.failures_file_id:
        return dispatch.failures_file_id

    async def failures() -> AsyncIterator[Failure]:
        async for d in ctx.deliveries.in_state(key, NOT_SENT):
            yield d.failure()

    written = await ctx.storage.blobs.put_lines(
        failures(), f"{dispatch.dispatch_id}-not-sent.ndjson", tenant_id=dispatch.tenant_id
    )
    if await ctx.dispatches.set_failures_file(key, written):
        return written
    await ctx.storage.blobs.delete(written)
    recorded = await ctx.dispatches.get(key)
    assert recorded is not None and recorded.failures_file_id is not None
    return recorded.failures_file_id
