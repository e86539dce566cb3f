"""Wiring of the recipient-directory service (its bootstrap)."""

from publipost_bus import Bus
from publipost_contracts import ResolveRecipients
from publipost_http import upload_limit
from publipost_runtime import Service
from publipost_storage import Storage, Upgrade

from . import handlers, segment_api
from .api import router, settings_router
from .context import DirectoryContext
from .repository import RecipientRepository, SegmentRepository, TenantSettingsRepository
from .settings import RecipientDirectorySettings


def build(settings: RecipientDirectorySettings | None = None) -> Service:
    settings = settings or RecipientDirectorySettings()
    storage = Storage.for_service(settings)
    bus = Bus(settings)
    ctx = DirectoryContext(
        settings=settings,
        recipients=RecipientRepository(storage.db),
        segments=SegmentRepository(storage.db),
        tenant_settings=TenantSettingsRepository(storage.db),
    )

    bus.consumer(ResolveRecipients, idempotent=False)(handlers.resolve_recipients)

    return Service(
        settings=settings,
        bus=bus,
        storage=storage,
        components=ctx,
        routers=[router, segment_api.router, settings_router],
        repositories=[ctx.recipients, ctx.segments, ctx.tenant_settings],
        schema_version=2,
        upgrades=[Upgrade(2, "a recipient's default format (pdf) states none", ctx.recipients.forget_default_formats)],
        body_limits={"POST /recipients/import": upload_limit(settings.max_import_bytes)},
    )


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
