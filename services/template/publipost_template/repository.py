from typing import Any

from publipost_storage import Repository
from pymongo import ASCENDING, DESCENDING, IndexModel


class TemplateRepository(Repository):
    collection_name = "templates"
    indexes = (IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),)

    async def add(self, template: dict[str, Any]) -> None:
        await self.collection.insert_one(template)

    async def get(self, tenant_id: str, template_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": template_id, "tenant_id": tenant_id})

    async def list(self, tenant_id: str, *, skip: int, limit: int) -> list[dict[str, Any]]:
        cursor = self.collection.find({"tenant_id": tenant_id}).sort("created_at", DESCENDING).skip(skip).limit(limit)
        return await cursor.to_list()
