"""Wiring of the render-pdf service (its bootstrap)."""

from publipost_bus import Bus
from publipost_contracts import DocumentsRendered, RenderRequested
from publipost_runtime import Service
from publipost_storage import Storage

from . import handlers
from .api import router
from .context import RenderContext
from .converter import ConverterPool, WorkerConfig
from .settings import RenderPdfSettings


def build(settings: RenderPdfSettings | None = None) -> Service:
    settings = settings or RenderPdfSettings()
    storage = Storage.for_service(settings)
    bus = Bus(settings, publishes=[DocumentsRendered])
    converter = ConverterPool(
        settings.workers,
        WorkerConfig(
            soffice_path=settings.soffice_path,
            uno_python=settings.uno_python,
            restart_after=settings.restart_after,
            conversion_timeout_s=settings.conversion_timeout_s,
            start_timeout_s=settings.start_timeout_s,
        ),
    )
    ctx = RenderContext(settings=settings, storage=storage, bus=bus, converter=converter)

    @bus.consumer(RenderRequested)
    async def render_requested(event: RenderRequested) -> None:
        """Convert a chunk of DOCX documents to PDF."""
        await handlers.render_requested(event, ctx)

    return Service(
        settings=settings,
        bus=bus,
        storage=storage,
        components=ctx,
        routers=[router],
        on_start=[converter.start],
        on_stop=[converter.stop],
        readiness={"libreoffice": converter.healthy},
    )


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
