from collections.abc import Sequence

import pymongo
from publipost_settings import ServiceSettings
from publipost_telemetry import MongoSpans, tracer_provider
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.monitoring import CommandListener

from .blobs import BlobStore
from .metrics import COMMAND_COUNTER
from .query_log import QueryLog


class Storage:
    """The service's connection: its own database and the shared blob store.

    Each collection belongs to one service, which is why a service only gets
    its own database; blobs are the one shared space, read by id.
    """

    def __init__(
        self, url: str, database: str, blob_database: str, *, event_listeners: Sequence[CommandListener] = ()
    ) -> None:
        self.client: AsyncMongoClient = AsyncMongoClient(
            url,
            serverSelectionTimeoutMS=3000,
            connectTimeoutMS=3000,
            tz_aware=True,
            uuidRepresentation="standard",
            event_listeners=list(event_listeners),
        )
        self.db: AsyncDatabase = self.client[database]
        self.blobs = BlobStore(self.client[blob_database])

    @classmethod
    def for_service(cls, settings: ServiceSettings) -> "Storage":
        # Every service counts its database commands on /metrics (publipost_db_commands_total).
        listeners: list[CommandListener] = [COMMAND_COUNTER]
        if settings.query_log:
            listeners.append(QueryLog(settings.query_log, settings.namespace))
        if (tracing := tracer_provider(settings)) is not None:
            listeners.append(MongoSpans(tracing))
        return cls(settings.mongodb_url, settings.database_name, settings.blob_database_name, event_listeners=listeners)

    async def ping(self, timeout_s: float = 0.8) -> bool:
        """Whether the database answers within `timeout_s` (server selection included): readiness asks, and
        a Kubernetes probe waits 1 s by default, not the 3 s a query may wait for a server."""
        try:
            with pymongo.timeout(timeout_s):
                await self.db.command("ping")
        except Exception:  # noqa: BLE001 - readiness answers a yes/no, whatever the cause
            return False
        return True

    async def close(self) -> None:
        await self.client.close()
