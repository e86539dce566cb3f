"""Wiring of the render-pdf service (its bootstrap)."""

from publipost_bus import Bus
from publipost_contracts import DocumentsRendered, RenderRequested
from publipost_runtime import Service
from publipost_storage import Storage

from . import handlers
from .api import router
from .backends import Backends
from .context import RenderContext
from .libreoffice import LibreOfficePool, WorkerConfig
from .repository import TenantSettingsRepository, UsageRepository
from .settings import RenderPdfSettings


def build(settings: RenderPdfSettings | None = None) -> Service:
    settings = settings or RenderPdfSettings()
    storage = Storage.for_service(settings)
    bus = Bus(settings, publishes=[DocumentsRendered])
    libreoffice = LibreOfficePool(
        settings.workers,
        WorkerConfig.from_settings(settings),
    )
    backends = Backends(settings, libreoffice)
    tenants = TenantSettingsRepository(storage.db)
    usage = UsageRepository(storage.db)
    ctx = RenderContext(
        settings=settings,
        storage=storage,
        bus=bus,
        converter=libreoffice,
        backends=backends,
        tenants=tenants,
        usage=usage,
    )

    bus.consumer(RenderRequested)(handlers.render_requested)

    return Service(
        settings=settings,
        bus=bus,
        storage=storage,
        components=ctx,
        routers=[router],
        repositories=[tenants, usage],
        on_start=[libreoffice.start],
        on_stop=[libreoffice.stop, backends.stop],  # run in reverse: the runs stop before LibreOffice
        readiness={"libreoffice": libreoffice.healthy},
    )


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
