import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from publipost_storage import Repository
from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .domain import DocumentStatus

DUPLICATE_KEY = 11000


class MailingRepository(Repository):
    collection_name = "mailings"
    indexes = (
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("progress_at", ASCENDING)]),  # the sweep's stalled mailings
    )

    async def create(self, mailing: dict[str, Any]) -> bool:
        """Insert; False when a mailing with this id exists already (a redelivered request)."""
        try:
            await self.collection.insert_one(mailing)
        except DuplicateKeyError:
            return False
        return True

    async def get(self, mailing_id: str, tenant_id: str | None = None) -> dict[str, Any] | None:
        query: dict[str, Any] = {"_id": mailing_id}
        if tenant_id is not None:
            query["tenant_id"] = tenant_id
        return await self.collection.find_one(query)

    async def update(self, mailing_id: str, changes: dict[str, Any]) -> None:
        await self.collection.update_one({"_id": mailing_id}, {"$set": changes})

    async def move_status(self, mailing_id: str, from_status: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Compare-and-set on the status: only one of concurrent handlers wins a transition. An update and a
        read rather than a findAndModify, which SecantusDB writes by scanning the collection."""
        result = await self.collection.update_one({"_id": mailing_id, "status": from_status}, {"$set": changes})
        if result.matched_count != 1:
            return None
        return await self.get(mailing_id)

    async def page(
        self, tenant_id: str, *, skip: int, limit: int, status: str | None = None, name: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Newest first; `name` matches anywhere in the name, ignoring case."""
        query: dict[str, Any] = {"tenant_id": tenant_id}
        if status is not None:
            query["status"] = status
        if name:
            query["name"] = {"$regex": re.escape(name), "$options": "i"}
        cursor = self.collection.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        items = await cursor.skip(skip).limit(limit).to_list()
        return items, await self.collection.count_documents(query)

    def stalled(self, status: str, before: datetime) -> AsyncIterator[dict[str, Any]]:
        """Mailings in `status` that have not moved since `before`."""
        return aiter(self.collection.find({"status": status, "progress_at": {"$lt": before}}))

    async def delete(self, mailing_id: str) -> None:
        await self.collection.delete_one({"_id": mailing_id})


class DocumentRepository(Repository):
    collection_name = "documents"
    indexes = (
        IndexModel([("mailing_id", ASCENDING), ("index", ASCENDING)]),
        IndexModel([("mailing_id", ASCENDING), ("status", ASCENDING)]),
    )

    async def get(self, document_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": document_id})

    async def add_many(self, documents: list[dict[str, Any]]) -> None:
        """Insert those not stored yet: a redelivered request renders only what is missing, but a crash
        between two writes of a chunk may leave some of it stored."""
        if not documents:
            return
        try:
            await self.collection.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise

    async def existing_ids(self, mailing_id: str) -> set[str]:
        cursor = self.collection.find({"mailing_id": mailing_id}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def set_many(self, updates: dict[str, dict[str, Any]]) -> None:
        if updates:
            await self.collection.bulk_write(
                [UpdateOne({"_id": document_id}, {"$set": changes}) for document_id, changes in updates.items()],
                ordered=False,
            )

    async def count(self, mailing_id: str, status: str | None = None) -> int:
        query: dict[str, Any] = {"mailing_id": mailing_id}
        if status is not None:
            query["status"] = status
        return await self.collection.count_documents(query)

    def in_order(
        self, mailing_id: str, *, after: int = -1, limit: int = 0, status: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        query: dict[str, Any] = {"mailing_id": mailing_id, "index": {"$gt": after}}
        if status is not None:
            query["status"] = status
        return aiter(self.collection.find(query).sort("index", ASCENDING).limit(limit))

    def pending_render(self, mailing_id: str) -> AsyncIterator[dict[str, Any]]:
        cursor = self.collection.find(
            {"mailing_id": mailing_id, "status": DocumentStatus.RENDERED}, {"_id": 1, "docx_blob_id": 1, "index": 1}
        ).sort("index", ASCENDING)
        return aiter(cursor)

    async def reassign(self, mailing_id: str, document_ids: list[str], to_mailing_id: str) -> None:
        await self.collection.update_many(
            {"mailing_id": mailing_id, "_id": {"$in": document_ids}}, {"$set": {"mailing_id": to_mailing_id}}
        )

    async def reassign_rest(self, mailing_id: str, to_mailing_id: str) -> None:
        await self.collection.update_many({"mailing_id": mailing_id}, {"$set": {"mailing_id": to_mailing_id}})

    def blob_ids(self, mailing_id: str) -> AsyncIterator[dict[str, Any]]:
        return aiter(self.collection.find({"mailing_id": mailing_id}, {"docx_blob_id": 1, "pdf_blob_id": 1}))

    async def delete_of(self, mailing_id: str) -> None:
        await self.collection.delete_many({"mailing_id": mailing_id})


class TenantSettingsRepository(Repository):
    """Per-tenant choices of the merge service (one document per tenant)."""

    collection_name = "tenant_settings"

    async def get(self, tenant_id: str) -> dict[str, Any]:
        return await self.collection.find_one({"_id": tenant_id}) or {}

    async def page_limit(self, tenant_id: str, default: int) -> int:
        return (await self.get(tenant_id)).get("combined_page_limit") or default

    async def set(self, tenant_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        await self.collection.update_one({"_id": tenant_id}, {"$set": changes}, upsert=True)
        return await self.get(tenant_id)
