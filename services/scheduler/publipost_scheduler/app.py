"""Wiring of the scheduler service (its bootstrap)."""

from datetime import UTC, datetime
from functools import partial

import httpx
from publipost_auth import service_client, service_credentials
from publipost_bus import Bus
from publipost_contracts import (
    CampaignFired,
    DispatchCompleted,
    DispatchRefused,
    DispatchRequested,
    MergeCompleted,
    MergeRejected,
    MergeRequested,
)
from publipost_runtime import Service
from publipost_storage import Storage

from . import handlers
from .api import router
from .clients import DirectoryClient, Targets
from .context import Clock, SchedulerContext
from .repository import CampaignRepository, OccurrenceRepository
from .settings import SchedulerSettings
from .ticker import Ticker


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build(
    settings: SchedulerSettings | None = None, *, clock: Clock = _utc_now, targets: Targets | None = None
) -> Service:
    """`targets`: what answers whether a campaign's mailing, template, e-mail template, account and segment are the tenant's (tests give
    a fake; by default the services that own them, over HTTP)."""
    settings = settings or SchedulerSettings()
    storage = Storage.for_service(settings)
    bus = Bus(settings, publishes=[CampaignFired, DispatchRequested, MergeRequested])
    # Calls to other services carry the scheduler's own credentials: one token for all of them.
    client = partial(
        service_client, settings, timeout_s=settings.http_timeout_s, credentials=service_credentials(settings)
    )
    directory = client(settings.directory_url)
    ctx = SchedulerContext(
        settings=settings,
        bus=bus,
        storage=storage,
        campaigns=CampaignRepository(storage.db),
        occurrences=OccurrenceRepository(storage.db),
        directory=DirectoryClient(directory),
        targets=targets
        or Targets(
            client(settings.merge_url),
            client(settings.template_url),
            directory,
            httpx.AsyncClient(base_url=settings.dispatch_url, timeout=settings.http_timeout_s),
        ),
        clock=clock,
    )

    bus.consumer(MergeCompleted)(handlers.merge_completed)
    # How each occurrence ended, for GET /campaigns/{id}.
    bus.consumer(MergeRejected)(handlers.merge_rejected)
    bus.consumer(DispatchRefused)(handlers.dispatch_refused)
    bus.consumer(DispatchCompleted)(handlers.dispatch_completed)

    ticker = Ticker(ctx)
    return Service(
        settings=settings,
        bus=bus,
        storage=storage,
        components=ctx,
        routers=[router],
        repositories=[ctx.campaigns, ctx.occurrences],
        timers=[ticker],
        on_stop=[ctx.directory.close, ctx.targets.close],
        readiness={"ticker": ticker.healthy},
    )


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
