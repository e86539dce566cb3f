"""Wiring of the scheduler service (its bootstrap)."""

from datetime import UTC, datetime

from publipost_auth import service_client
from publipost_bus import Bus
from publipost_contracts import CampaignFired, DispatchRequested, MergeCompleted, MergeRequested
from publipost_runtime import Service
from publipost_storage import Storage

from . import handlers
from .api import router
from .clients import DirectoryClient
from .context import Clock, SchedulerContext
from .repository import CampaignRepository, OccurrenceRepository
from .settings import SchedulerSettings
from .ticker import Ticker


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build(settings: SchedulerSettings | None = None, *, clock: Clock = _utc_now) -> Service:
    settings = settings or SchedulerSettings()
    storage = Storage.for_service(settings)
    bus = Bus(settings, publishes=[CampaignFired, DispatchRequested, MergeRequested])
    ctx = SchedulerContext(
        settings=settings,
        bus=bus,
        storage=storage,
        campaigns=CampaignRepository(storage.db),
        occurrences=OccurrenceRepository(storage.db),
        directory=DirectoryClient(service_client(settings, settings.directory_url, settings.http_timeout_s)),
        clock=clock,
    )

    @bus.consumer(MergeCompleted)
    async def merge_completed(event: MergeCompleted) -> None:
        """Send the mailing of a campaign's re-run merge once it is ready."""
        await handlers.merge_completed(event, ctx)

    ticker = Ticker(ctx)
    return Service(
        settings=settings,
        bus=bus,
        storage=storage,
        components=ctx,
        routers=[router],
        repositories=[ctx.campaigns, ctx.occurrences],
        timers=[ticker],
        on_stop=[ctx.directory.close],
        readiness={"ticker": ticker.healthy},
    )


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
