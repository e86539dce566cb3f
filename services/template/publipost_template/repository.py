"""The template service's collections: templates, their versions, e-mail templates."""

from datetime import datetime
from typing import Any

from publipost_storage import Repository
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError


class TemplateRepository(Repository):
    """One document per template: its name and when it last changed. What merge renders is in its versions."""

    collection_name = "templates"
    indexes = (
        IndexModel([("tenant_id", ASCENDING), ("updated_at", DESCENDING)]),
        # Only templates stored before versions existed have a blob_id, until the upgrade at start: a sparse
        # index holds just those, so the upgrade's look for them costs nothing once none is left.
        IndexModel([("blob_id", ASCENDING)], sparse=True),
    )

    async def add(self, template: dict[str, Any]) -> None:
        await self.collection.insert_one(template)

    async def get(self, tenant_id: str, template_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": template_id, "tenant_id": tenant_id})

    async def page(self, tenant_id: str, *, skip: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Most recently uploaded (first version or new one) first."""
        query = {"tenant_id": tenant_id}
        cursor = self.collection.find(query).sort([("updated_at", DESCENDING), ("_id", DESCENDING)])
        return await cursor.skip(skip).limit(limit).to_list(), await self.collection.count_documents(query)

    async def touch(self, template_id: str, when: datetime) -> None:
        await self.collection.update_one({"_id": template_id}, {"$max": {"updated_at": when}})

    async def delete(self, tenant_id: str, template_id: str) -> bool:
        result = await self.collection.delete_one({"_id": template_id, "tenant_id": tenant_id})
        return result.deleted_count == 1

    async def first_generation(self) -> list[dict[str, Any]]:
        """Templates stored before versions existed: their one file and fields sit on the template itself."""
        return await self.collection.find({"blob_id": {"$exists": True}}).to_list()

    async def mark_upgraded(self, template_id: str, updated_at: datetime) -> None:
        await self.collection.update_one(
            {"_id": template_id},
            {"$unset": {"blob_id": "", "fields": "", "version": ""}, "$set": {"updated_at": updated_at}},
        )


class TemplateVersionRepository(Repository):
    """One document per version, never changed once written: merge may be rendering any of them."""

    collection_name = "template_versions"
    indexes = (IndexModel([("template_id", ASCENDING), ("version", DESCENDING)], unique=True),)

    @staticmethod
    def version_id(template_id: str, version: int) -> str:
        return f"{template_id}:{version}"

    async def add(self, version: dict[str, Any]) -> bool:
        """Insert; False when that version number was taken meanwhile (two new versions at once)."""
        try:
            await self.collection.insert_one(
                {"_id": self.version_id(version["template_id"], version["version"]), **version}
            )
        except DuplicateKeyError:
            return False
        return True

    async def get(self, tenant_id: str, template_id: str, version: int | None = None) -> dict[str, Any] | None:
        """That version, or the latest."""
        query: dict[str, Any] = {"tenant_id": tenant_id, "template_id": template_id}
        if version is not None:
            query["version"] = version
        return await self.collection.find_one(query, sort=[("version", DESCENDING)])

    async def all_of(self, tenant_id: str, template_id: str) -> list[dict[str, Any]]:
        cursor = self.collection.find({"tenant_id": tenant_id, "template_id": template_id})
        return await cursor.sort("version", DESCENDING).to_list()

    async def latest_of(self, tenant_id: str, template_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The latest version of each template of a page of them."""
        cursor = self.collection.find({"tenant_id": tenant_id, "template_id": {"$in": template_ids}})
        latest: dict[str, dict[str, Any]] = {}
        async for version in cursor.sort("version", DESCENDING):
            latest.setdefault(version["template_id"], version)
        return latest

    async def remove(self, version_id: str) -> None:
        await self.collection.delete_one({"_id": version_id})


class EmailTemplateRepository(Repository):
    collection_name = "email_templates"
    indexes = (IndexModel([("tenant_id", ASCENDING), ("updated_at", DESCENDING)]),)

    async def add(self, template: dict[str, Any]) -> None:
        await self.collection.insert_one(template)

    async def get(self, tenant_id: str, template_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": template_id, "tenant_id": tenant_id})

    async def replace(self, template: dict[str, Any]) -> bool:
        """Replace the stored template; False when it is gone (or belongs to another tenant)."""
        query = {"_id": template["_id"], "tenant_id": template["tenant_id"]}
        result = await self.collection.replace_one(query, template)
        return result.matched_count == 1

    async def page(
        self, tenant_id: str, *, template_type: str | None, skip: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        query = {"tenant_id": tenant_id} | ({"template_type": template_type} if template_type else {})
        cursor = self.collection.find(query).sort([("updated_at", DESCENDING), ("_id", DESCENDING)])
        return await cursor.skip(skip).limit(limit).to_list(), await self.collection.count_documents(query)

    async def delete(self, tenant_id: str, template_id: str) -> bool:
        result = await self.collection.delete_one({"_id": template_id, "tenant_id": tenant_id})
        return result.deleted_count == 1
