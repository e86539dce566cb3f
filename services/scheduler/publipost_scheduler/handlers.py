"""The timer's work: fire due campaigns once, across every replica, and finish announcements cut short."""

from datetime import timedelta
from typing import Any

from publipost_contracts import CampaignFired, DispatchRequested, deterministic_id
from publipost_logging import get_logger

from .context import SchedulerContext
from .domain import CampaignStatus, Occurrence

log = get_logger(__name__)


async def tick(ctx: SchedulerContext) -> int:
    """One pass; returns how many occurrences this replica announced."""
    now = ctx.clock()
    announced = 0
    for campaign in await ctx.campaigns.due(now):
        occurrence = Occurrence(campaign["_id"], campaign["next_run_at"])
        claimed = await ctx.occurrences.claim(occurrence, campaign, now)
        if claimed is not None:
            await announce(ctx, claimed)
            announced += 1
        await ctx.campaigns.advance(
            campaign["_id"], occurrence.at, {"next_run_at": None, "status": CampaignStatus.DONE, "last_run_at": now}
        )
    for stale in await ctx.occurrences.unannounced(now - timedelta(seconds=ctx.settings.claim_timeout_s)):
        log.warning("announcing an occurrence cut short", campaign_id=stale["campaign_id"], at=stale["at"])
        await announce(ctx, stale)
        announced += 1
    return announced


async def announce(ctx: SchedulerContext, occurrence: dict[str, Any]) -> None:
    """Publish campaign.fired and dispatch.requested with ids fixed by the occurrence: announcing twice is harmless."""
    key = occurrence["_id"]
    common = {"tenant_id": occurrence["tenant_id"], "correlation_id": occurrence["dispatch_id"]}
    fired = CampaignFired(
        event_id=deterministic_id(key, CampaignFired.routing_key),
        campaign_id=occurrence["campaign_id"],
        occurrence_at=occurrence["at"],
        dispatch_id=occurrence["dispatch_id"],
        **common,
    )
    await ctx.bus.publish(fired)
    await ctx.bus.publish(
        DispatchRequested(
            event_id=deterministic_id(key, DispatchRequested.routing_key),
            causation_id=str(fired.event_id),
            dispatch_id=occurrence["dispatch_id"],
            **occurrence["dispatch"],
            **common,
        )
    )
    await ctx.occurrences.mark_announced(key, ctx.clock())
    log.info("campaign fired", campaign_id=occurrence["campaign_id"], dispatch_id=occurrence["dispatch_id"])
