"""Wiring of the template service (its bootstrap)."""

from functools import partial

from publipost_auth import ApiKeyRepository, UserRepository, api_keys_router, users_router
from publipost_bus import Bus
from publipost_contracts import TemplateRegistered
from publipost_http import upload_limit
from publipost_runtime import Service
from publipost_storage import Storage, Upgrade

from .api import router
from .context import TemplateContext
from .email_api import router as email_router
from .handlers import upgrade_stored_templates
from .repository import EmailTemplateRepository, TemplateRepository, TemplateVersionRepository
from .settings import TemplateSettings


def build(settings: TemplateSettings | None = None) -> Service:
    settings = settings or TemplateSettings()
    storage = Storage.for_service(settings)
    bus = Bus(settings, publishes=[TemplateRegistered])
    repositories = (
        TemplateRepository(storage.db),
        TemplateVersionRepository(storage.db),
        EmailTemplateRepository(storage.db),
    )
    context = TemplateContext(settings, storage, bus, *repositories)
    # The template service serves the identity routes (/api-keys, /users, /me; docs/identity.md) and makes
    # their collections' indexes.
    identity = storage.client[settings.identity_database_name]
    api_keys, users = ApiKeyRepository(identity), UserRepository(identity)
    return Service(
        settings=settings,
        bus=bus,
        storage=storage,
        components=context,
        routers=[router, email_router, api_keys_router, users_router],
        repositories=[*repositories, api_keys, users],
        schema_version=2,
        upgrades=[
            Upgrade(
                2, "templates stored before versions get their version 1", partial(upgrade_stored_templates, context)
            )
        ],
        body_limits={
            route: upload_limit(settings.max_template_bytes)
            for route in ("POST /templates", "POST /templates/{template_id}/versions")
        },
    )


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
