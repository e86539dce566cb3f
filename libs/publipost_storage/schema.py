"""A service's stored schema: the indexes of its collections and the upgrades of its data, applied by an
explicit step (`python -m publipost migrate`), never by a service starting, and recorded with a version.

A service reads the recorded version before it works: while it is older than the code's, the service is
not ready and does not consume (a replica of the release before goes on: its version is older still). An
upgrade runs once, in order, and must be idempotent, since a migration stopped halfway runs again.
"""

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from .blobs import BlobStore
from .repository import Repository

SCHEMA_ID = "schema"


@dataclass(frozen=True)
class Upgrade:
    """Brings the stored data to `version`: fills what the code of that version expects."""

    version: int
    name: str
    apply: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Migrated:
    before: int
    after: int
    upgrades: list[str]


@dataclass
class Schema:
    database: AsyncDatabase
    version: int
    repositories: Sequence[Repository]
    blobs: BlobStore | None = None
    upgrades: Sequence[Upgrade] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        versions = [upgrade.version for upgrade in self.upgrades]
        if versions != sorted(set(versions)) or any(not 1 < v <= self.version for v in versions):
            raise ValueError(f"upgrades must have increasing versions in 2..{self.version}: {versions}")

    @property
    def _records(self):  # type: ignore[no-untyped-def]
        return self.database["schema_version"]

    async def stored(self) -> int:
        """The version the store was last migrated to (0: never)."""
        record = await self._records.find_one({"_id": SCHEMA_ID})
        return int(record["version"]) if record else 0

    async def current(self) -> bool:
        return await self.stored() >= self.version

    def index_digest(self) -> str:
        """What the declared indexes are, in a few characters: a change of indexes is a new schema version."""
        declared = sorted(
            (repository.collection_name, json.dumps(index.document, sort_keys=True, default=str))
            for repository in self.repositories
            for index in repository.indexes
        )
        return hashlib.sha256(json.dumps(declared).encode()).hexdigest()[:16]

    async def migrate(self) -> Migrated:
        """Indexes first (made as declared, those no longer declared dropped), then each upgrade newer than
        the store, each recorded as it ends, so a migration stopped halfway goes on from there."""
        before = await self.stored()
        for repository in self.repositories:
            await repository.ensure_indexes()
        if self.blobs is not None:
            await self.blobs.ensure_indexes()
        applied = []
        for upgrade in self.upgrades:
            if upgrade.version > max(before, 1):
                await upgrade.apply()
                await self._record(upgrade.version, upgrade.name)
                applied.append(upgrade.name)
        await self._record(max(before, self.version), "indexes")
        return Migrated(before=before, after=await self.stored(), upgrades=applied)

    async def _record(self, version: int, step: str) -> None:
        await self._records.update_one(
            {"_id": SCHEMA_ID},
            {
                "$max": {"version": version},
                "$set": {"indexes": self.index_digest(), "migrated_at": datetime.now(UTC)},
                "$push": {
                    "steps": {"$each": [{"version": version, "step": step, "at": datetime.now(UTC)}], "$slice": -100}
                },
            },
            upsert=True,
        )
