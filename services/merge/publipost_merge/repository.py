"""Merge's collections: mailings, documents, tenant settings and the mailings asked for over HTTP, stored and
loaded as domain entities."""

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, NamedTuple, get_args

from publipost_contracts import ConverterName, Problem
from publipost_storage import Entities, Repository
from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .domain import Document, DocumentStatus, EmailState, Mailing, MailingRequest, MailingStatus, TenantSettings

DUPLICATE_KEY = 11000
MAILINGS = Entities(Mailing)
DOCUMENTS = Entities(Document)
TENANT_SETTINGS = Entities(TenantSettings)
MAILING_REQUESTS = Entities(MailingRequest)


class MailingRepository(Repository):
    collection_name = "mailings"
    indexes = (
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("progress_at", ASCENDING)]),  # the sweep's stalled mailings
    )

    async def create(self, mailing: Mailing) -> bool:
        """Insert; False when a mailing with this id exists already (a redelivered request)."""
        try:
            await self.collection.insert_one(MAILINGS.dump(mailing))
        except DuplicateKeyError:
            return False
        return True

    async def get(self, mailing_id: str, tenant_id: str | None = None) -> Mailing | None:
        query: dict[str, Any] = {"_id": mailing_id}
        if tenant_id is not None:
            query["tenant_id"] = tenant_id
        return MAILINGS.load_or_none(await self.collection.find_one(query))

    async def save(self, mailing: Mailing, *fields: str) -> None:
        """Store the named fields of the mailing (the ones its last change touched)."""
        await self.collection.update_one({"_id": mailing.id}, {"$set": MAILINGS.dump_fields(mailing, *fields)})

    async def move(self, mailing: Mailing, from_status: MailingStatus, *fields: str) -> bool:
        """Store the mailing's new status (and the named fields) only if it is still `from_status`: of
        concurrent handlers, only one wins a transition. False for the others, whose copy is stale."""
        changes = MAILINGS.dump_fields(mailing, "status", *fields)
        result = await self.collection.update_one({"_id": mailing.id, "status": from_status}, {"$set": changes})
        return result.matched_count == 1

    async def set_documents_file(self, mailing_id: str, file_id: str) -> bool:
        """Record the documents file of a mailing that has none; False when another was recorded first."""
        result = await self.collection.update_one(
            {"_id": mailing_id, "documents_file_id": None}, {"$set": {"documents_file_id": file_id}}
        )
        return result.modified_count == 1

    async def progressed(self, mailing_id: str, *, rendered: int | None = None) -> None:
        """A chunk was rendered or converted: the sweep leaves it alone a while longer (see sweeper.py)."""
        changes: dict[str, Any] = {"progress_at": datetime.now(UTC)}
        if rendered is not None:
            changes["rendered"] = rendered
        await self.collection.update_one({"_id": mailing_id}, {"$set": changes})

    async def page(
        self, tenant_id: str, *, skip: int, limit: int, status: str | None = None, name: str | None = None
    ) -> tuple[list[Mailing], int]:
        """Newest first; `name` matches anywhere in the name, ignoring case."""
        query: dict[str, Any] = {"tenant_id": tenant_id}
        if status is not None:
            query["status"] = status
        if name:
            query["name"] = {"$regex": re.escape(name), "$options": "i"}
        cursor = self.collection.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        items = [MAILINGS.load(doc) for doc in await cursor.skip(skip).limit(limit).to_list()]
        return items, await self.collection.count_documents(query)

    async def stalled(self, status: MailingStatus, before: datetime) -> AsyncIterator[Mailing]:
        """Mailings in `status` that have not moved since `before`."""
        async for doc in self.collection.find({"status": status, "progress_at": {"$lt": before}}):
            yield MAILINGS.load(doc)

    async def delete(self, mailing_id: str) -> None:
        await self.collection.delete_one({"_id": mailing_id})


class PendingConversion(NamedTuple):
    """A rendered document waiting for its PDF: what render-pdf is asked with."""

    id: str
    docx_blob_id: str
    index: int


class PageCount(NamedTuple):
    index: int
    page_count: int


class DocumentRepository(Repository):
    collection_name = "documents"
    indexes = (
        IndexModel([("mailing_id", ASCENDING), ("index", ASCENDING)]),
        IndexModel([("mailing_id", ASCENDING), ("status", ASCENDING)]),
        IndexModel([("mailing_id", ASCENDING), ("email_state", ASCENDING), ("index", ASCENDING)]),
    )

    async def get(self, document_id: str) -> Document | None:
        return DOCUMENTS.load_or_none(await self.collection.find_one({"_id": document_id}))

    async def get_many(self, document_ids: list[str]) -> list[Document]:
        return [DOCUMENTS.load(doc) async for doc in self.collection.find({"_id": {"$in": document_ids}})]

    async def add_many(self, documents: list[Document]) -> None:
        """Insert those not stored yet: a redelivered request renders only what is missing, but a crash
        between two writes of a chunk may leave some of it stored."""
        if not documents:
            return
        try:
            await self.collection.insert_many([DOCUMENTS.dump(d) for d in documents], ordered=False)
        except BulkWriteError as exc:
            if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise

    async def existing_ids(self, mailing_id: str) -> set[str]:
        cursor = self.collection.find({"mailing_id": mailing_id}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def save_many(self, documents: list[Document], *fields: str) -> None:
        """Store the named fields of each document, in one round trip."""
        if documents:
            await self.collection.bulk_write(
                [UpdateOne({"_id": d.id}, {"$set": DOCUMENTS.dump_fields(d, *fields)}) for d in documents],
                ordered=False,
            )

    async def count(self, mailing_id: str, status: DocumentStatus | None = None) -> int:
        query: dict[str, Any] = {"mailing_id": mailing_id}
        if status is not None:
            query["status"] = status
        return await self.collection.count_documents(query)

    async def converted_by(self, mailing_id: str) -> dict[str, int]:
        """The mailing's PDFs per converter that made them (those it has PDFs of)."""
        counts = {
            name: await self.collection.count_documents({"mailing_id": mailing_id, "converted_by": name})
            for name in get_args(ConverterName)
        }
        return {name: count for name, count in counts.items() if count}

    async def in_order(
        self,
        mailing_id: str,
        *,
        after: int = -1,
        limit: int = 0,
        status: DocumentStatus | None = None,
        email_state: EmailState | None = None,
    ) -> AsyncIterator[Document]:
        """Streamed, one document at a time: a mailing has up to 100,000."""
        async for doc in self._in_order(mailing_id, after=after, limit=limit, status=status, email_state=email_state):
            yield DOCUMENTS.load(doc)

    async def page_counts(self, mailing_id: str) -> AsyncIterator[PageCount]:
        """The converted documents' indexes and page counts, in order: what the print file is planned from."""
        projection = {"index": 1, "page_count": 1}
        async for doc in self._in_order(mailing_id, status=DocumentStatus.CONVERTED, projection=projection):
            yield PageCount(doc["index"], doc.get("page_count", 0))

    def _in_order(
        self,
        mailing_id: str,
        *,
        after: int = -1,
        limit: int = 0,
        status: DocumentStatus | None = None,
        email_state: EmailState | None = None,
        projection: dict[str, int] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        query: dict[str, Any] = {"mailing_id": mailing_id, "index": {"$gt": after}}
        if status is not None:
            query["status"] = status
        if email_state is EmailState.NEVER_SENT:
            query["email_state"] = {"$in": [email_state, None]}  # documents stored before e-mail states have none
        elif email_state is not None:
            query["email_state"] = email_state
        return aiter(self.collection.find(query, projection).sort("index", ASCENDING).limit(limit))

    async def pending_render(self, mailing_id: str) -> AsyncIterator[PendingConversion]:
        cursor = self.collection.find(
            {"mailing_id": mailing_id, "status": DocumentStatus.RENDERED}, {"_id": 1, "docx_blob_id": 1, "index": 1}
        ).sort("index", ASCENDING)
        async for doc in cursor:
            yield PendingConversion(doc["_id"], doc["docx_blob_id"], doc["index"])

    async def reassign_rest(self, mailing_id: str, to_mailing_id: str) -> None:
        """Move the documents sent: a failure before this send is no longer theirs."""
        await self.collection.update_many(
            {"mailing_id": mailing_id},
            {"$set": {"mailing_id": to_mailing_id, "last_failure": None, "last_failure_kind": None}},
        )

    async def blob_ids(self, mailing_id: str) -> AsyncIterator[str]:
        """Every file of the mailing's documents (DOCX and PDF)."""
        async for doc in self.collection.find({"mailing_id": mailing_id}, {"docx_blob_id": 1, "pdf_blob_id": 1}):
            for blob_id in (doc.get("docx_blob_id"), doc.get("pdf_blob_id")):
                if blob_id:
                    yield blob_id

    async def delete_of(self, mailing_id: str) -> None:
        await self.collection.delete_many({"mailing_id": mailing_id})


class TenantSettingsRepository(Repository):
    """Per-tenant choices of the merge service (one document per tenant)."""

    collection_name = "tenant_settings"

    async def get(self, tenant_id: str) -> TenantSettings:
        """The tenant's settings; the defaults for a tenant that chose none."""
        stored = await self.collection.find_one({"_id": tenant_id})
        return TenantSettings(id=tenant_id) if stored is None else TENANT_SETTINGS.load(stored)

    async def save(self, settings: TenantSettings) -> None:
        changes = TENANT_SETTINGS.dump_fields(settings, "combined_page_limit", "language", "facturx_profile")
        await self.collection.update_one({"_id": settings.id}, {"$set": changes}, upsert=True)


class MailingRequestRepository(Repository):
    """Mailings asked for over HTTP (domain.MailingRequest), by the mailing's id."""

    collection_name = "mailing_requests"

    async def claim(self, request: MailingRequest) -> bool:
        """Record the request; False when one with its id (its tenant and request id) was recorded first."""
        try:
            await self.collection.insert_one(MAILING_REQUESTS.dump(request))
        except DuplicateKeyError:
            return False
        return True

    async def get(self, mailing_id: str, tenant_id: str | None = None) -> MailingRequest | None:
        query: dict[str, Any] = {"_id": mailing_id}
        if tenant_id is not None:
            query["tenant_id"] = tenant_id
        return MAILING_REQUESTS.load_or_none(await self.collection.find_one(query))

    async def refused(self, mailing_id: str, problems: list[Problem]) -> None:
        """Merge's refusal, once: a redelivered request refused again leaves the first reasons."""
        refusal = [problem.model_dump() for problem in problems]
        await self.collection.update_one({"_id": mailing_id, "refusal": None}, {"$set": {"refusal": refusal}})

    async def delete(self, mailing_id: str) -> None:
        await self.collection.delete_one({"_id": mailing_id})
