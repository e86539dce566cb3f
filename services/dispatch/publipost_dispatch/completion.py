"""How a dispatch ends: paused (too many SMTP errors, the daily cap) or completed once every document has
its final outcome."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from publipost_contracts import (
    DispatchCompleted,
    DispatchPaused,
    Failure,
    deterministic_id,
)
from publipost_logging import get_logger
from publipost_storage import derived_blob_id

from .context import DispatchContext
from .domain import (
    COMPLETABLE,
    NOT_SENT,
    DeliveryState,
    DispatchStatus,
)
from .metrics import PAUSES

log = get_logger(__name__)


async def pause(ctx: DispatchContext, key: str, reason: str) -> None:
    """Stop starting sends: those already queued wait in the database until a person resumes."""
    if not await ctx.dispatches.move_status(
        key, DispatchStatus.SENDING, {"status": DispatchStatus.PAUSED, "reason": reason}
    ):
        return
    PAUSES.inc()
    dispatch = await ctx.dispatches.get(key)
    assert dispatch is not None
    log.warning("dispatch paused", dispatch_id=dispatch["dispatch_id"], reason=reason)
    await ctx.bus.publish(
        DispatchPaused(
            event_id=deterministic_id("dispatch.paused", key, dispatch["resumptions"]),
            tenant_id=dispatch["tenant_id"],
            correlation_id=dispatch["correlation_id"],
            dispatch_id=dispatch["dispatch_id"],
            mailing_id=dispatch["mailing_id"],
            reason=reason,
            errors=dispatch["errors"],
            sent=await ctx.deliveries.count(key, (DeliveryState.SENT,)),
            failed=await ctx.deliveries.count(key, (DeliveryState.FAILED,)),
        )
    )



async def complete_if_done(ctx: DispatchContext, key: str) -> None:
    """When every document has its final outcome, announce the dispatch's completion (once per dispatch id)."""
    if await ctx.deliveries.any_pending(key):  # first: while sends go on, the check costs this query alone
        return
    dispatch = await ctx.dispatches.get(key)
    # A paused dispatch whose every document has its outcome (the last sends in flight at the pause
    # ended) has nothing left to resume: it completes, and its mailing is regrouped.
    if dispatch is None or dispatch["status"] not in COMPLETABLE:
        return
    sent = await ctx.deliveries.count(key, (DeliveryState.SENT,))
    failed = await ctx.deliveries.count(key, NOT_SENT)
    uncertain = await ctx.deliveries.count(key, (DeliveryState.UNCERTAIN,))
    failures = [
        Failure(document_id=d["document_id"], reason=d["reason"] or "failed")
        async for d in ctx.deliveries.in_state(key, NOT_SENT, limit=DispatchCompleted.FAILURES_LISTED)
    ]
    failures_file_id = await _failures_file(ctx, dispatch) if failed > len(failures) else None
    # Published before the status moves: a crash in between leaves the dispatch "sending", and the sweep
    # publishes the same event (same id) again rather than never.
    await ctx.bus.publish(
        DispatchCompleted(
            event_id=deterministic_id("dispatch.completed", key),
            tenant_id=dispatch["tenant_id"],
            correlation_id=dispatch["correlation_id"],
            dispatch_id=dispatch["dispatch_id"],
            mailing_id=dispatch["mailing_id"],
            sent=sent,
            failed=failed,
            failures=failures,
            failures_truncated=failed > len(failures),
            failures_file_id=failures_file_id,
            uncertain=uncertain,
        )
    )
    completed = {
        "status": DispatchStatus.COMPLETED,
        "sent": sent,
        "failed": failed,
        "uncertain": uncertain,
        "completed_at": datetime.now(UTC),
    }
    if dispatch["status"] != DispatchStatus.COMPLETED:
        await ctx.dispatches.move_status(key, dispatch["status"], completed)


async def _failures_file(ctx: DispatchContext, dispatch: dict[str, Any]) -> str:
    """Every document not sent, a Failure a line, for the consumers of dispatch.completed (merge regroups by
    it): more than an event holds. Its id is fixed by the dispatch: a completion run again replaces it."""
    key = dispatch["_id"]

    async def lines() -> AsyncIterator[bytes]:
        async for d in ctx.deliveries.in_state(key, NOT_SENT):
            failure = Failure(document_id=d["document_id"], reason=d["reason"] or "failed")
            yield failure.model_dump_json().encode() + b"\n"

    return await ctx.storage.blobs.put_stream(
        lines(),
        f"{dispatch['dispatch_id']}-not-sent.ndjson",
        "application/x-ndjson",
        blob_id=derived_blob_id("dispatch-failures", key),
        tenant_id=dispatch["tenant_id"],
    )
