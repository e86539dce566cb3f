"""Bring every service's stored schema to this release's: indexes as the code declares them, then the data
upgrades newer than the store, each recorded (publipost_storage.schema). Idempotent: run it before every
release (the k8s migration Job, `make up` and docker compose do), and again after one stopped halfway."""

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the services' code loads when a migration runs, not when `publipost` starts
    from publipost_runtime import Service
    from publipost_storage import Migrated

SERVICES = ("template", "recipient-directory", "merge", "render-pdf", "dispatch", "scheduler")


def build(service: str) -> "Service":
    """The service as it would run, its settings from this environment (MONGODB_URL, PUBLIPOST_NAMESPACE)."""
    module = importlib.import_module(f"publipost_{service.replace('-', '_')}.app")
    built: Service = module.build()
    return built


async def migrate(services: Sequence[str] = SERVICES) -> dict[str, "Migrated"]:
    done = {}
    for name in services:
        service = build(name)
        try:
            done[name] = await service.migrate()
        finally:
            await service.storage.close()
    return done
