"""Wiring of the template service (its bootstrap)."""

from publipost_bus import Bus
from publipost_contracts import TemplateRegistered
from publipost_runtime import Service
from publipost_storage import Storage

from .api import router
from .context import TemplateContext
from .repository import TemplateRepository
from .settings import TemplateSettings


def build(settings: TemplateSettings | None = None) -> Service:
    settings = settings or TemplateSettings()
    storage = Storage.for_service(settings)
    bus = Bus(settings, publishes=[TemplateRegistered])
    templates = TemplateRepository(storage.db)
    return Service(
        settings=settings,
        bus=bus,
        storage=storage,
        components=TemplateContext(settings, storage, bus, templates),
        routers=[router],
        repositories=[templates],
    )


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
