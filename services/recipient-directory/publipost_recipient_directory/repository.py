from datetime import UTC, datetime
from typing import Any

from publipost_storage import Repository
from pymongo import ASCENDING, IndexModel, ReturnDocument


class RecipientRepository(Repository):
    collection_name = "recipients"
    indexes = (IndexModel([("tenant_id", ASCENDING), ("customer_number", ASCENDING)], unique=True),)

    async def get(self, tenant_id: str, customer_number: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"tenant_id": tenant_id, "customer_number": customer_number})

    async def upsert(self, tenant_id: str, customer_number: str, fields: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create or replace the recipient's fields; says whether it was created."""
        now = datetime.now(UTC)
        before = await self.collection.find_one_and_update(
            {"tenant_id": tenant_id, "customer_number": customer_number},
            {"$set": {**fields, "updated_at": now}, "$setOnInsert": {"created_at": now}},
            upsert=True,
            return_document=ReturnDocument.BEFORE,
        )
        after = await self.get(tenant_id, customer_number)
        assert after is not None
        return after, before is None

    async def delete(self, tenant_id: str, customer_number: str) -> bool:
        result = await self.collection.delete_one({"tenant_id": tenant_id, "customer_number": customer_number})
        return result.deleted_count == 1

    async def page(self, tenant_id: str, *, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Recipients in customer-number order, from just after `after` (keyset: stable under inserts)."""
        query: dict[str, Any] = {"tenant_id": tenant_id}
        if after is not None:
            query["customer_number"] = {"$gt": after}
        cursor = self.collection.find(query).sort("customer_number", ASCENDING).limit(limit)
        return await cursor.to_list()
