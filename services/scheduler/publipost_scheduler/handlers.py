"""The scheduler's work: fire due campaigns once across every replica, finish announcements cut short,
and send the mailing of a re-run merge once it is ready."""

from dataclasses import asdict
from datetime import timedelta

from publipost_bus import Components
from publipost_contracts import CampaignFired, DispatchRequested, MergeCompleted, MergeRequested, deterministic_id
from publipost_logging import get_logger

from .clients import SegmentNotFound
from .context import SchedulerContext
from .domain import Occurrence, RerunMerge

log = get_logger(__name__)


async def tick(ctx: SchedulerContext) -> int:
    """One pass; returns how many occurrences this replica announced."""
    now = ctx.clock()
    announced = 0
    for campaign in await ctx.campaigns.due(now):
        due = campaign.next_run_at
        assert due is not None
        fire_at = campaign.occurrence_due(now, timedelta(seconds=ctx.settings.late_grace_s))
        if fire_at is None:
            log.info("missed occurrence skipped (catch-up: skip)", campaign_id=campaign.id, due=due)
        else:
            occurrence = Occurrence.of(campaign, fire_at, now)
            if await ctx.occurrences.claim(occurrence):
                await announce(ctx, occurrence)
                announced += 1
        campaign.move_past(fire_at, now)
        await ctx.campaigns.advance(campaign, due)
    for stale in await ctx.occurrences.unannounced(now - timedelta(seconds=ctx.settings.claim_timeout_s)):
        log.warning("announcing an occurrence cut short", campaign_id=stale.campaign_id, at=stale.at)
        await announce(ctx, stale)
        announced += 1
    return announced


async def announce(ctx: SchedulerContext, occurrence: Occurrence) -> None:
    """campaign.fired, then the dispatch or merge request, with ids fixed by the occurrence:
    announcing twice is harmless."""
    fired = CampaignFired(
        event_id=deterministic_id(occurrence.id, CampaignFired.routing_key),
        campaign_id=occurrence.campaign_id,
        occurrence_at=occurrence.at,
        dispatch_id=occurrence.idempotency_key,
        **_envelope(occurrence),
    )
    await ctx.bus.publish(fired)
    action = occurrence.campaign.action
    error = None
    if isinstance(action, RerunMerge):
        try:
            await _request_merge(ctx, occurrence, action, causation_id=str(fired.event_id))
        except SegmentNotFound as exc:
            error = str(exc)  # nothing to retry: the campaign must be fixed
    else:
        await _request_dispatch(ctx, occurrence, action.mailing_id, causation_id=str(fired.event_id))
    occurrence.announced(ctx.clock(), error)
    await ctx.occurrences.save(occurrence, "announced_at", "error")
    log.info("campaign fired", campaign_id=occurrence.campaign_id, occurrence=occurrence.idempotency_key)


async def _request_merge(
    ctx: SchedulerContext, occurrence: Occurrence, action: RerunMerge, *, causation_id: str
) -> None:
    """Re-run the merge on the segment's recipients as they are today; the records go by GridFS reference."""
    tenant_id = occurrence.tenant_id
    records = await ctx.storage.blobs.put_stream(
        ctx.directory.segment_records(tenant_id, action.segment_id),
        f"{occurrence.idempotency_key}.ndjson",
        "application/x-ndjson",
        tenant_id=tenant_id,
    )
    document_date = occurrence.document_date()
    custom_fields = dict(action.custom_fields)
    if occurrence.campaign.auto_increment_date:
        custom_fields["date"] = document_date
    await ctx.bus.publish(
        MergeRequested(
            event_id=deterministic_id(occurrence.id, MergeRequested.routing_key),
            causation_id=causation_id,
            request_id=occurrence.idempotency_key,
            template_id=action.template_id,
            template_version=action.template_version,
            name=f"{occurrence.campaign.name} {document_date}",
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
        occurrence.rerun_failed(event.status)
        await ctx.occurrences.save(occurrence, "error")
        return
    await _request_dispatch(ctx, occurrence, event.mailing_id, causation_id=str(event.event_id))
    occurrence.rerun_ready(event.mailing_id)
    await ctx.occurrences.save(occurrence, "dispatched_mailing_id", "error")


async def _request_dispatch(
    ctx: SchedulerContext, occurrence: Occurrence, mailing_id: str, *, causation_id: str
) -> None:
    await ctx.bus.publish(
        DispatchRequested(
            event_id=deterministic_id(occurrence.id, DispatchRequested.routing_key),
            causation_id=causation_id,
            dispatch_id=occurrence.idempotency_key,
            mailing_id=mailing_id,
            # The campaign's author asks: its sending account must be shared with them.
            requested_by=occurrence.campaign.requested_by,
            **asdict(occurrence.campaign.message),
            **_envelope(occurrence),
        )
    )


def _envelope(occurrence: Occurrence) -> dict[str, str]:
    return {"tenant_id": occurrence.tenant_id, "correlation_id": occurrence.idempotency_key}
