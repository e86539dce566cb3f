"""Wiring of the dispatch service (its bootstrap)."""

from publipost_bus import Bus
from publipost_contracts import (
    DeliveryRecorded,
    DispatchCompleted,
    DispatchPaused,
    DispatchRequested,
    DispatchResumed,
    DocumentSent,
    ResolveRecipient,
    SendRequested,
)
from publipost_runtime import Service
from publipost_storage import Storage

from . import handlers
from .api import router
from .clients import MergeClient
from .context import DispatchContext
from .repository import DeliveryRepository, DispatchRepository
from .settings import DispatchSettings
from .smtp import SmtpPool


def build(settings: DispatchSettings | None = None) -> Service:
    settings = settings or DispatchSettings()
    storage = Storage.for_service(settings)
    bus = Bus(
        settings,
        publishes=[
            SendRequested,
            DeliveryRecorded,
            DocumentSent,
            DispatchCompleted,
            DispatchPaused,
            DispatchResumed,
            ResolveRecipient,
        ],
    )
    ctx = DispatchContext(
        settings=settings,
        storage=storage,
        bus=bus,
        dispatches=DispatchRepository(storage.db),
        deliveries=DeliveryRepository(storage.db),
        merge=MergeClient(settings.merge_url, settings.http_timeout_s),
        smtp=SmtpPool(
            settings.smtp_host,
            settings.smtp_port,
            size=settings.smtp_connections,
            timeout_s=settings.smtp_timeout_s,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password,
        ),
    )

    @bus.consumer(DispatchRequested)
    async def dispatch_requested(event: DispatchRequested) -> None:
        """Fan a dispatch out into one send per document."""
        await handlers.dispatch_requested(event, ctx)

    @bus.consumer(DispatchResumed)
    async def dispatch_resumed(event: DispatchResumed) -> None:
        """Ask again for every send of a resumed dispatch that is still pending."""
        await handlers.dispatch_resumed(event, ctx)

    @bus.consumer(SendRequested)
    async def send_requested(event: SendRequested) -> None:
        """Send one document to its recipient and record the outcome."""
        await handlers.send_requested(event, ctx)

    async def close_adapters() -> None:
        await ctx.smtp.close()
        await ctx.merge.close()

    return Service(
        settings=settings,
        bus=bus,
        storage=storage,
        components=ctx,
        routers=[router],
        repositories=[ctx.dispatches, ctx.deliveries],
        on_stop=[close_adapters],
    )


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
