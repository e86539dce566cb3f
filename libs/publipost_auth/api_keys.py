"""API keys for internal systems: `pp_<id>_<secret>`, shown once when made, stored as the SHA-256 of the secret,
scoped to one tenant and some roles, revocable, their last use recorded in batches.

The secret is 256 random bits, so a plain SHA-256 is enough: a slow password hash only helps secrets a person
chose. The id locates the key with one read by `_id`; the secret is compared in constant time.
"""

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from publipost_storage import Repository
from pymongo import DESCENDING, IndexModel, UpdateOne

from .batching import Batched
from .errors import InvalidCredentials
from .principal import PEOPLE_ROLES, Principal, PrincipalKind, Role

PREFIX = "pp"
_KEY = re.compile(r"^pp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def looks_like_api_key(value: str) -> bool:
    """Whether a bearer credential is an API key rather than a JWT (a JWT never starts with `pp_`)."""
    return value.startswith(f"{PREFIX}_")


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """(key id, the whole key to hand over once, the digest to store)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}_{key_id}_{secret}", secret_digest(secret)


def split_key(key: str) -> tuple[str, str]:
    match = _KEY.match(key)
    if match is None:
        raise InvalidCredentials("the API key is not of the form pp_<id>_<secret>")
    return match.group(1), match.group(2)


@dataclass(frozen=True)
class ApiKey:
    """A key as stored, without its secret."""

    key_id: str
    tenant_id: str
    name: str
    roles: frozenset[Role]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "ApiKey":
        return cls(
            key_id=doc["_id"],
            tenant_id=doc["tenant_id"],
            name=doc["name"],
            roles=frozenset(Role(role) for role in doc["roles"]),
            created_at=doc["created_at"],
            created_by=doc["created_by"],
            revoked_at=doc.get("revoked_at"),
            last_used_at=doc.get("last_used_at"),
        )

    def principal(self) -> Principal:
        return Principal(self.tenant_id, self.key_id, self.roles, PrincipalKind.API_KEY)


@dataclass(frozen=True)
class NewApiKey:
    """What creating a key returns: the key itself, which is not stored and cannot be shown again."""

    key: str
    api_key: ApiKey


class ApiKeyRepository(Repository):
    """The `api_keys` collection of the identity database (settings.identity_database_name): every service
    reads a key by id to check it; the service that serves /api-keys owns it and makes its index."""

    collection_name = "api_keys"
    indexes = (IndexModel([("tenant_id", 1), ("created_at", DESCENDING)], name="tenant_newest_first"),)

    def __init__(self, db: Any, clock: Clock = _utc_now) -> None:
        super().__init__(db)
        self.clock = clock

    async def create(self, tenant_id: str, name: str, roles: Iterable[Role], created_by: str) -> NewApiKey:
        roles = frozenset(Role(role) for role in roles)
        if not roles or not roles <= PEOPLE_ROLES:
            allowed = ", ".join(sorted(PEOPLE_ROLES))
            raise ValueError(f"an API key's roles are one or more of {allowed}")
        key_id, key, digest = new_key()
        now = self.clock()
        doc = {
            "_id": key_id,
            "tenant_id": tenant_id,
            "name": name,
            "roles": sorted(roles),
            "secret_sha256": digest,
            "created_at": now,
            "created_by": created_by,
            "revoked_at": None,
            "last_used_at": None,
        }
        await self.collection.insert_one(doc)
        return NewApiKey(key, ApiKey.from_document(doc))

    async def list(self, tenant_id: str, skip: int = 0, limit: int = 100) -> list[ApiKey]:
        cursor = self.collection.find({"tenant_id": tenant_id}, {"secret_sha256": 0})
        cursor = cursor.sort("created_at", DESCENDING).skip(skip).limit(limit)
        return [ApiKey.from_document(doc) async for doc in cursor]

    async def revoke(self, tenant_id: str, key_id: str) -> ApiKey | None:
        """Revoke a key of the tenant (again: nothing changes). None when the tenant has no such key."""
        await self.collection.update_one(
            {"_id": key_id, "tenant_id": tenant_id, "revoked_at": None}, {"$set": {"revoked_at": self.clock()}}
        )
        doc = await self.collection.find_one({"_id": key_id, "tenant_id": tenant_id}, {"secret_sha256": 0})
        return None if doc is None else ApiKey.from_document(doc)

    async def find_with_digest(self, key_id: str) -> tuple[ApiKey, str] | None:
        doc = await self.collection.find_one({"_id": key_id})
        return None if doc is None else (ApiKey.from_document(doc), doc["secret_sha256"])

    async def record_last_use(self, last_uses: dict[str, datetime]) -> None:
        """One batch for every key used since the last: `$max`, so an older batch never moves a date back."""
        if last_uses:
            requests = [UpdateOne({"_id": key_id}, {"$max": {"last_used_at": at}}) for key_id, at in last_uses.items()]
            await self.collection.bulk_write(requests, ordered=False)


class ApiKeyVerifier:
    """Checks a presented key: its id is read (a cached answer for `cache_s`), its secret compared in constant
    time, its revocation honoured; a use is noted for the next last-use batch."""

    def __init__(self, repository: ApiKeyRepository, cache_s: float, flush_s: float) -> None:
        self.repository = repository
        self.cache_s = cache_s
        self.last_use = Batched(repository.record_last_use, flush_s, "API keys' last use")
        self._cache: dict[str, tuple[float, tuple[ApiKey, str] | None]] = {}

    async def verify(self, key: str) -> Principal:
        key_id, secret = split_key(key)
        found = await self._find(key_id)
        # Compared even when the id is unknown, so an answer's timing does not say which ids exist.
        digest = found[1] if found is not None else "0" * 64
        if not hmac.compare_digest(digest, secret_digest(secret)) or found is None:
            raise InvalidCredentials("the API key is not known")
        api_key = found[0]
        if api_key.revoked_at is not None:
            raise InvalidCredentials("the API key has been revoked")
        self.last_use.note(key_id, self.repository.clock())
        return api_key.principal()

    async def _find(self, key_id: str) -> tuple[ApiKey, str] | None:
        cached = self._cache.get(key_id)
        if cached is not None and time.monotonic() - cached[0] < self.cache_s:
            return cached[1]
        found = await self.repository.find_with_digest(key_id)
        if len(self._cache) > 10_000:
            self._cache.clear()  # made-up ids must not grow memory without bound
        self._cache[key_id] = (time.monotonic(), found)
        return found

    def forget(self, key_id: str) -> None:
        """Drop a cached key (this process revoked it: it stops working here at once)."""
        self._cache.pop(key_id, None)

    async def close(self) -> None:
        await self.last_use.close()
