"""Idempotent consumption: a record of each message a consumer has fully handled, keyed by event id."""

from datetime import UTC, datetime, timedelta

from publipost_storage import Repository
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError


class ProcessedMessages(Repository):
    """A consumer marks a message only after its effects are stored and its events published.

    A redelivery of a marked message is skipped; a redelivery of an unmarked one
    runs the handler again, which is why handlers write with deterministic keys.
    """

    collection_name = "processed_messages"
    RETENTION = timedelta(days=14)
    indexes = (
        IndexModel([("consumer", ASCENDING), ("event_id", ASCENDING)], unique=True),
        IndexModel([("processed_at", ASCENDING)], expireAfterSeconds=int(RETENTION.total_seconds())),
    )

    async def already_processed(self, consumer: str, event_id: str) -> bool:
        return await self.collection.find_one({"consumer": consumer, "event_id": event_id}, {"_id": 1}) is not None

    async def mark(self, consumer: str, event_id: str) -> None:
        try:
            await self.collection.insert_one(
                {"consumer": consumer, "event_id": event_id, "processed_at": datetime.now(UTC)}
            )
        except DuplicateKeyError:
            pass
