from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from publipost_storage import Repository
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from .domain import PENDING, DeliveryState


class DispatchRepository(Repository):
    collection_name = "dispatches"
    indexes = (IndexModel([("tenant_id", ASCENDING), ("dispatch_id", ASCENDING)], unique=True),)

    async def create(self, dispatch: dict[str, Any]) -> None:
        try:
            await self.collection.insert_one(dispatch)
        except DuplicateKeyError:
            pass

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": key})

    async def find(self, tenant_id: str, dispatch_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"tenant_id": tenant_id, "dispatch_id": dispatch_id})

    async def update(self, key: str, changes: dict[str, Any]) -> None:
        await self.collection.update_one({"_id": key}, {"$set": changes})

    async def move_status(self, key: str, from_status: str, changes: dict[str, Any]) -> bool:
        result = await self.collection.update_one({"_id": key, "status": from_status}, {"$set": changes})
        return result.modified_count == 1


class DeliveryRepository(Repository):
    """One record per (dispatch, document): its state moves queued → sending → sent / failed."""

    collection_name = "deliveries"
    indexes = (
        IndexModel([("dispatch_key", ASCENDING), ("state", ASCENDING), ("index", ASCENDING)]),
        IndexModel([("dispatch_key", ASCENDING), ("index", ASCENDING)]),
    )

    async def add(self, delivery: dict[str, Any]) -> None:
        """Insert unless present: a redelivered fan-out never resets a delivery already under way."""
        await self.collection.update_one({"_id": delivery["_id"]}, {"$setOnInsert": delivery}, upsert=True)

    async def get(self, delivery_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": delivery_id})

    async def start_attempt(self, delivery_id: str, recipients: list[str], message_id: str) -> dict[str, Any] | None:
        """queued/sending → sending, counting the attempt; None if the delivery is already final."""
        return await self.collection.find_one_and_update(
            {"_id": delivery_id, "state": {"$in": list(PENDING)}},
            {
                "$set": {"state": DeliveryState.SENDING, "recipients": recipients, "message_id": message_id},
                "$inc": {"attempts": 1},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def finish(self, delivery_id: str, state: DeliveryState, changes: dict[str, Any]) -> bool:
        """Record the final outcome once; False if another handler recorded it first."""
        result = await self.collection.update_one(
            {"_id": delivery_id, "state": {"$in": list(PENDING)}},
            {"$set": {"state": state, "finished_at": datetime.now(UTC), **changes}},
        )
        return result.modified_count == 1

    async def count(self, dispatch_key: str, states: tuple[str, ...]) -> int:
        return await self.collection.count_documents({"dispatch_key": dispatch_key, "state": {"$in": list(states)}})

    def in_state(
        self, dispatch_key: str, states: tuple[str, ...], *, after: int = -1, limit: int = 0
    ) -> AsyncIterator[dict[str, Any]]:
        query = {"dispatch_key": dispatch_key, "state": {"$in": list(states)}, "index": {"$gt": after}}
        return aiter(self.collection.find(query).sort("index", ASCENDING).limit(limit))
