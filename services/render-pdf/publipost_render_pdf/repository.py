"""render-pdf's own collections: each tenant's conversion settings and yearly usage."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from publipost_storage import Entities, Repository
from pymongo import ASCENDING, IndexModel
from pymongo.errors import BulkWriteError

from .domain import Backend, TenantConversionSettings, quota_grant

_TENANT_SETTINGS = Entities(TenantConversionSettings)

# A chunk is never redelivered a year later: its charges can go once their year is well over.
CHARGES_KEPT_S = 400 * 24 * 3600


class TenantSettingsRepository(Repository):
    """Per tenant: a yearly limit (absent: the service default; None: unlimited), a backend, and the backend
    that takes over past the limit."""

    collection_name = "tenant_settings"

    async def get(self, tenant_id: str) -> TenantConversionSettings:
        """The tenant's settings; one that never set any has the service's."""
        stored = await self.collection.find_one({"_id": tenant_id})
        return _TENANT_SETTINGS.load(stored or {"_id": tenant_id})

    async def set_limit(self, tenant_id: str, yearly_limit: int | None) -> None:
        await self.collection.update_one({"_id": tenant_id}, {"$set": {"yearly_limit": yearly_limit}}, upsert=True)

    async def set_backend(self, tenant_id: str, backend: Backend | None, gotenberg_url: str | None) -> None:
        stored_backend = backend.value if backend else None
        await self.collection.update_one(
            {"_id": tenant_id}, {"$set": {"backend": stored_backend, "gotenberg_url": gotenberg_url}}, upsert=True
        )

    async def set_overflow(self, tenant_id: str, backend: Backend | None, gotenberg_url: str | None) -> None:
        changes = {"overflow_backend": backend.value if backend else None, "overflow_gotenberg_url": gotenberg_url}
        await self.collection.update_one({"_id": tenant_id}, {"$set": changes}, upsert=True)


class UsageRepository(Repository):
    """One counter per tenant and year, and one charge per document counted, so a redelivered chunk
    whose documents were counted but not stored is not counted twice."""

    collection_name = "conversion_usage"
    indexes = (IndexModel([("tenant_id", ASCENDING), ("year", ASCENDING)]),)

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.charges = db["conversion_charges"]

    async def ensure_indexes(self) -> None:
        await super().ensure_indexes()
        await self.charges.create_indexes([IndexModel([("at", ASCENDING)], expireAfterSeconds=CHARGES_KEPT_S)])

    async def used(self, tenant_id: str, year: int) -> int:
        counter = await self.collection.find_one({"_id": _counter_id(tenant_id, year)})
        return counter["conversions"] if counter else 0

    async def charged(self, tenant_id: str, year: int, document_ids: Sequence[str]) -> set[str]:
        """Documents already counted (an earlier delivery of the chunk stopped before storing their PDF)."""
        ids = [_charge_id(tenant_id, year, document_id) for document_id in document_ids]
        return {charge["document_id"] async for charge in self.charges.find({"_id": {"$in": ids}})}

    async def charge(self, tenant_id: str, year: int, document_ids: Sequence[str], limit: int | None) -> list[str]:
        """Count as many of `document_ids` as the limit allows, in order; return those counted.

        The counter moves by compare-and-set, so replicas counting at once never
        grant more than the limit between them.
        """
        if not document_ids:
            return []
        key = _counter_id(tenant_id, year)
        new_counter = {"$setOnInsert": {"tenant_id": tenant_id, "year": year}}
        if limit is None:  # nothing to check: one write, however many replicas count at once
            granted = len(document_ids)
            await self.collection.update_one(
                {"_id": key}, {"$inc": {"conversions": granted}, **new_counter}, upsert=True
            )
        else:
            await self.collection.update_one({"_id": key}, {"$inc": {"conversions": 0}, **new_counter}, upsert=True)
            while True:
                used = await self.used(tenant_id, year)
                granted = quota_grant(used, limit, len(document_ids))
                if granted == 0:
                    return []
                result = await self.collection.update_one(
                    {"_id": key, "conversions": used}, {"$inc": {"conversions": granted}}
                )
                if result.modified_count == 1:
                    break
        counted = list(document_ids[:granted])
        now = datetime.now(UTC)
        try:
            await self.charges.insert_many(
                [
                    {"_id": _charge_id(tenant_id, year, d), "tenant_id": tenant_id, "document_id": d, "at": now}
                    for d in counted
                ],
                ordered=False,
            )
        except BulkWriteError:
            pass  # charges left by an earlier attempt that stopped between the two writes
        return counted

    async def refund(self, tenant_id: str, year: int, document_ids: Sequence[str]) -> None:
        """Documents that were counted but could not be converted do not count."""
        if not document_ids:
            return
        ids = [_charge_id(tenant_id, year, document_id) for document_id in document_ids]
        deleted = (await self.charges.delete_many({"_id": {"$in": ids}})).deleted_count
        if deleted:
            await self.collection.update_one({"_id": _counter_id(tenant_id, year)}, {"$inc": {"conversions": -deleted}})


def _counter_id(tenant_id: str, year: int) -> str:
    return f"{tenant_id}:{year}"


def _charge_id(tenant_id: str, year: int, document_id: str) -> str:
    return f"{tenant_id}:{year}:{document_id}"
