"""The template service's collections: templates, their versions, e-mail templates."""

from datetime import datetime
from typing import Any

from publipost_storage import Entities, Repository
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from .domain import FirstGenerationTemplate, Template, TemplateVersion
from .email_templates import EmailTemplate

_TEMPLATES = Entities(Template)
_FIRST_GENERATION = Entities(FirstGenerationTemplate)
_VERSIONS = Entities(TemplateVersion)
_EMAIL_TEMPLATES = Entities(EmailTemplate)


class TemplateRepository(Repository):
    """One document per template: its name and when it last changed. What merge renders is in its versions."""

    collection_name = "templates"
    indexes = (
        IndexModel([("tenant_id", ASCENDING), ("updated_at", DESCENDING)]),
        # Only templates stored before versions existed have a blob_id, until the upgrade at start: a sparse
        # index holds just those, so the upgrade's look for them costs nothing once none is left.
        IndexModel([("blob_id", ASCENDING)], sparse=True),
    )

    async def add(self, template: Template) -> None:
        await self.collection.insert_one(_TEMPLATES.dump(template))

    async def get(self, tenant_id: str, template_id: str) -> Template | None:
        return _TEMPLATES.load_or_none(await self.collection.find_one({"_id": template_id, "tenant_id": tenant_id}))

    async def page(self, tenant_id: str, *, skip: int, limit: int) -> tuple[list[Template], int]:
        """Most recently uploaded (first version or new one) first."""
        query = {"tenant_id": tenant_id}
        cursor = self.collection.find(query).sort([("updated_at", DESCENDING), ("_id", DESCENDING)])
        page = [_TEMPLATES.load(document) async for document in cursor.skip(skip).limit(limit)]
        return page, await self.collection.count_documents(query)

    async def touch(self, template_id: str, when: datetime) -> None:
        await self.collection.update_one({"_id": template_id}, {"$max": {"updated_at": when}})

    async def delete(self, tenant_id: str, template_id: str) -> bool:
        result = await self.collection.delete_one({"_id": template_id, "tenant_id": tenant_id})
        return result.deleted_count == 1

    async def first_generation(self) -> list[FirstGenerationTemplate]:
        """Templates stored before versions existed: their one file and fields sit on the template itself."""
        return [
            _FIRST_GENERATION.load(document) async for document in self.collection.find({"blob_id": {"$exists": True}})
        ]

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

    async def add(self, version: TemplateVersion) -> bool:
        """Insert; False when that version number was taken meanwhile (two new versions at once)."""
        try:
            await self.collection.insert_one(
                {"_id": self.version_id(version.template_id, version.version), **_VERSIONS.dump(version)}
            )
        except DuplicateKeyError:
            return False
        return True

    async def get(self, tenant_id: str, template_id: str, version: int | None = None) -> TemplateVersion | None:
        """That version, or the latest."""
        query: dict[str, Any] = {"tenant_id": tenant_id, "template_id": template_id}
        if version is not None:
            query["version"] = version
        return _VERSIONS.load_or_none(await self.collection.find_one(query, sort=[("version", DESCENDING)]))

    async def all_of(self, tenant_id: str, template_id: str) -> list[TemplateVersion]:
        cursor = self.collection.find({"tenant_id": tenant_id, "template_id": template_id})
        return [_VERSIONS.load(document) async for document in cursor.sort("version", DESCENDING)]

    async def latest_of(self, tenant_id: str, template_ids: list[str]) -> dict[str, TemplateVersion]:
        """The latest version of each template of a page of them."""
        cursor = self.collection.find({"tenant_id": tenant_id, "template_id": {"$in": template_ids}})
        latest: dict[str, TemplateVersion] = {}
        async for document in cursor.sort("version", DESCENDING):
            if document["template_id"] not in latest:
                latest[document["template_id"]] = _VERSIONS.load(document)
        return latest

    async def remove(self, version: TemplateVersion) -> None:
        await self.collection.delete_one({"_id": self.version_id(version.template_id, version.version)})


class EmailTemplateRepository(Repository):
    collection_name = "email_templates"
    indexes = (IndexModel([("tenant_id", ASCENDING), ("updated_at", DESCENDING)]),)

    async def add(self, template: EmailTemplate) -> None:
        await self.collection.insert_one(_EMAIL_TEMPLATES.dump(template))

    async def get(self, tenant_id: str, template_id: str) -> EmailTemplate | None:
        document = await self.collection.find_one({"_id": template_id, "tenant_id": tenant_id})
        return _EMAIL_TEMPLATES.load_or_none(document)

    async def replace(self, template: EmailTemplate) -> bool:
        """Replace the stored template; False when it is gone (or belongs to another tenant)."""
        query = {"_id": template.id, "tenant_id": template.tenant_id}
        result = await self.collection.replace_one(query, _EMAIL_TEMPLATES.dump(template))
        return result.matched_count == 1

    async def page(
        self, tenant_id: str, *, template_type: str | None, skip: int, limit: int
    ) -> tuple[list[EmailTemplate], int]:
        query = {"tenant_id": tenant_id} | ({"template_type": template_type} if template_type else {})
        cursor = self.collection.find(query).sort([("updated_at", DESCENDING), ("_id", DESCENDING)])
        page = [_EMAIL_TEMPLATES.load(document) async for document in cursor.skip(skip).limit(limit)]
        return page, await self.collection.count_documents(query)

    async def delete(self, tenant_id: str, template_id: str) -> bool:
        result = await self.collection.delete_one({"_id": template_id, "tenant_id": tenant_id})
        return result.deleted_count == 1
