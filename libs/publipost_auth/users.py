"""The people of a tenant, as Publipost has seen them.

The issuer owns who they are, their tenant and their roles. Publipost records each person who calls it,
with the name, e-mail and roles of their latest token, in one batch per service every
`auth_last_use_flush_s`: an admin lists them (`GET /users`) to share a sending account with some of them,
and a person's own view (`GET /me`) says who Publipost takes them for.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from publipost_storage import Repository
from pymongo import DESCENDING, IndexModel, UpdateOne

from .principal import Principal, Role


def user_id(tenant_id: str, subject: str) -> str:
    return f"{tenant_id}/{subject}"


@dataclass(frozen=True)
class User:
    tenant_id: str
    subject: str  # the issuer's `sub`: what a sending account is shared with
    name: str | None
    email: str | None
    roles: frozenset[Role]
    first_seen: datetime
    last_seen: datetime

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "User":
        known = {role.value for role in Role}
        return cls(
            tenant_id=doc["tenant_id"],
            subject=doc["subject"],
            name=doc.get("name"),
            email=doc.get("email"),
            roles=frozenset(Role(role) for role in doc.get("roles", []) if role in known),
            first_seen=doc["first_seen"],
            last_seen=doc["last_seen"],
        )


class UserRepository(Repository):
    """The `users` collection of the identity database: one document per person of a tenant, `_id`
    `<tenant>/<subject>`. Every service writes it (in batches); the service serving /users makes its index."""

    collection_name = "users"
    indexes = (IndexModel([("tenant_id", 1), ("last_seen", DESCENDING)], name="tenant_latest_first"),)

    async def record_seen(self, seen: dict[str, tuple[Principal, datetime]]) -> None:
        """One upsert per person seen since the last batch: their latest name, e-mail and roles. `$max` on
        the date, so an older batch of another service never moves it back."""
        requests = [
            UpdateOne(
                {"_id": key},
                {
                    "$set": {"name": who.name, "email": who.email, "roles": sorted(who.roles)},
                    "$max": {"last_seen": at},
                    "$setOnInsert": {"tenant_id": who.tenant_id, "subject": who.subject, "first_seen": at},
                },
                upsert=True,
            )
            for key, (who, at) in seen.items()
        ]
        await self.collection.bulk_write(requests, ordered=False)

    async def list(self, tenant_id: str, skip: int = 0, limit: int = 100) -> list[User]:
        cursor = self.collection.find({"tenant_id": tenant_id}).sort("last_seen", DESCENDING).skip(skip).limit(limit)
        return [User.from_document(doc) async for doc in cursor]

    async def get(self, tenant_id: str, subject: str) -> User | None:
        doc = await self.collection.find_one({"_id": user_id(tenant_id, subject)})
        return None if doc is None else User.from_document(doc)
