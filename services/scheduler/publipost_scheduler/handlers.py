"""The scheduler's work: fire due campaigns once across every replica, finish announcements cut short,
and send the mailing of a re-run merge once it is ready."""

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from publipost_bus import Components
from publipost_contracts import CampaignFired, DispatchRequested, MergeCompleted, MergeRequested, deterministic_id
from publipost_logging import get_logger
from publipost_storage import derived_blob_id

from .clients import SegmentNotFound
from .context import SchedulerContext
from .domain import CampaignStatus, Occurrence, Recurrence, occurrence_to_fire

log = get_logger(__name__)


async def tick(ctx: SchedulerContext) -> int:
    """One pass; returns how many occurrences this replica announced."""
    now = ctx.clock()
    announced = 0
    for campaign in await ctx.campaigns.due(now):
        recurrence = Recurrence.from_document(campaign["recurrence"])
        due = campaign["next_run_at"]
        fire_at = occurrence_to_fire(
            recurrence,
            due,
            now,
            campaign["scheduled_at"],
            campaign["catch_up"],
            timedelta(seconds=ctx.settings.late_grace_s),
        )
        if fire_at is None:
            log.info("missed occurrence skipped (catch-up: skip)", campaign_id=campaign["_id"], due=due)
        else:
            occurrence = Occurrence(campaign["_id"], fire_at)
            claimed = await ctx.occurrences.claim(occurrence, campaign["tenant_id"], _snapshot(campaign), now)
            if claimed is not None:
                await announce(ctx, claimed)
                announced += 1
        following = recurrence.next_after(now, campaign["scheduled_at"])
        changes: dict[str, Any] = {"next_run_at": following, "last_run_at": fire_at or campaign.get("last_run_at")}
        if following is None:
            changes["status"] = CampaignStatus.DONE
        await ctx.campaigns.advance(campaign["_id"], due, changes)
    for stale in await ctx.occurrences.unannounced(now - timedelta(seconds=ctx.settings.claim_timeout_s)):
        log.warning("announcing an occurrence cut short", campaign_id=stale["campaign_id"], at=stale["at"])
        await announce(ctx, stale)
        announced += 1
    return announced


def _snapshot(campaign: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": campaign["name"],
        "timezone": campaign["recurrence"]["timezone"],
        **{k: campaign[k] for k in ("action", "message", "auto_increment_date")},
        "requested_by": campaign.get("requested_by"),
    }


async def announce(ctx: SchedulerContext, occurrence: dict[str, Any]) -> None:
    """campaign.fired, then the dispatch or merge request, with ids fixed by the occurrence:
    announcing twice is harmless."""
    key = occurrence["_id"]
    fired = CampaignFired(
        event_id=deterministic_id(key, CampaignFired.routing_key),
        campaign_id=occurrence["campaign_id"],
        occurrence_at=occurrence["at"],
        dispatch_id=occurrence["idempotency_key"],
        **_envelope(occurrence),
    )
    await ctx.bus.publish(fired)
    action = occurrence["campaign"]["action"]
    changes: dict[str, Any] = {"announced_at": ctx.clock()}
    if action["kind"] == "send_document":
        await _request_dispatch(ctx, occurrence, action["mailing_id"], causation_id=str(fired.event_id))
    else:
        try:
            await _request_merge(ctx, occurrence, action, causation_id=str(fired.event_id))
        except SegmentNotFound as exc:
            changes["error"] = str(exc)  # nothing to retry: the campaign must be fixed
    await ctx.occurrences.update(key, changes)
    log.info("campaign fired", campaign_id=occurrence["campaign_id"], occurrence=occurrence["idempotency_key"])


async def _request_merge(
    ctx: SchedulerContext, occurrence: dict[str, Any], action: dict[str, Any], *, causation_id: str
) -> None:
    """Re-run the merge on the segment's recipients as they are today; the records go by GridFS reference."""
    tenant_id = occurrence["tenant_id"]
    records = await ctx.storage.blobs.put_stream(
        ctx.directory.segment_records(tenant_id, action["segment_id"]),
        f"{occurrence['idempotency_key']}.ndjson",
        "application/x-ndjson",
        blob_id=derived_blob_id("campaign-records", occurrence["_id"]),
        tenant_id=tenant_id,
    )
    snapshot = occurrence["campaign"]
    document_date = Occurrence(occurrence["campaign_id"], occurrence["at"]).document_date(
        ZoneInfo(snapshot["timezone"])
    )
    custom_fields = dict(action.get("custom_fields") or {})
    if snapshot["auto_increment_date"]:
        custom_fields["date"] = document_date
    await ctx.bus.publish(
        MergeRequested(
            event_id=deterministic_id(occurrence["_id"], MergeRequested.routing_key),
            causation_id=causation_id,
            request_id=occurrence["idempotency_key"],
            template_id=action["template_id"],
            template_version=action.get("template_version"),
            name=f"{snapshot['name']} {document_date}",
            records_file_id=records,
            custom_fields=custom_fields,
            output="pdf",
            **_envelope(occurrence),
        )
    )


async def merge_completed(event: MergeCompleted, ctx: SchedulerContext = Components) -> None:
    """A re-run merge of one of our occurrences is ready: send it as the campaign says."""
    occurrence = await ctx.occurrences.by_idempotency_key(event.request_id)
    if occurrence is None:
        return  # a merge some other system asked for
    if event.status != "ready":
        await ctx.occurrences.update(occurrence["_id"], {"error": f"the re-run mailing is {event.status}"})
        return
    await _request_dispatch(ctx, occurrence, event.mailing_id, causation_id=str(event.event_id))
    await ctx.occurrences.update(occurrence["_id"], {"dispatched_mailing_id": event.mailing_id, "error": None})


async def _request_dispatch(
    ctx: SchedulerContext, occurrence: dict[str, Any], mailing_id: str, *, causation_id: str
) -> None:
    await ctx.bus.publish(
        DispatchRequested(
            event_id=deterministic_id(occurrence["_id"], DispatchRequested.routing_key),
            causation_id=causation_id,
            dispatch_id=occurrence["idempotency_key"],
            mailing_id=mailing_id,
            # The campaign's author asks: its sending account must be shared with them.
            requested_by=occurrence["campaign"].get("requested_by"),
            **occurrence["campaign"]["message"],
            **_envelope(occurrence),
        )
    )


def _envelope(occurrence: dict[str, Any]) -> dict[str, str]:
    return {"tenant_id": occurrence["tenant_id"], "correlation_id": occurrence["idempotency_key"]}
