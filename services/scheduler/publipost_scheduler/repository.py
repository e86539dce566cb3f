from datetime import UTC, datetime

from publipost_storage import Entities, Repository
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from .domain import Campaign, CampaignStatus, Occurrence

CAMPAIGNS = Entities(Campaign)
OCCURRENCES = Entities(Occurrence)


class CampaignRepository(Repository):
    collection_name = "campaigns"
    indexes = (
        IndexModel([("status", ASCENDING), ("next_run_at", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
    )

    async def add(self, campaign: Campaign) -> None:
        await self.collection.insert_one(CAMPAIGNS.dump(campaign))

    async def get(self, tenant_id: str, campaign_id: str) -> Campaign | None:
        return CAMPAIGNS.load_or_none(
            await self.collection.find_one(
                {"_id": campaign_id, "tenant_id": tenant_id, "status": {"$ne": CampaignStatus.DELETED}}
            )
        )

    async def page(self, tenant_id: str, *, skip: int, limit: int) -> tuple[list[Campaign], int]:
        """Newest first, and how many there are."""
        query = {"tenant_id": tenant_id, "status": {"$ne": CampaignStatus.DELETED}}
        cursor = self.collection.find(query).sort("created_at", DESCENDING).skip(skip).limit(limit)
        return [CAMPAIGNS.load(doc) async for doc in cursor], await self.collection.count_documents(query)

    async def due(self, now: datetime, limit: int = 100) -> list[Campaign]:
        cursor = (
            self.collection.find({"status": CampaignStatus.ACTIVE, "next_run_at": {"$lte": now}})
            .sort("next_run_at", ASCENDING)
            .limit(limit)
        )
        return [CAMPAIGNS.load(doc) async for doc in cursor]

    async def advance(self, campaign: Campaign, due: datetime) -> None:
        """Store the campaign moved past the occurrence due at `due`, unless someone already did
        (compare-and-set on next_run_at)."""
        await self.collection.update_one(
            {"_id": campaign.id, "status": CampaignStatus.ACTIVE, "next_run_at": due},
            {"$set": CAMPAIGNS.dump_fields(campaign, "next_run_at", "last_run_at", "status")},
        )

    async def change_if(self, campaign: Campaign, expected_status: str, *fields: str) -> Campaign | None:
        """Store the named fields of the campaign if it is still in `expected_status` (no lost update between
        two edits), and return the campaign as read just after; None when it was not."""
        # An update and a read rather than find_one_and_update: SecantusDB writes a findAndModify by reading
        # the whole collection (550 ms on 50,000 documents), an update by its _id (2 ms).
        changed = await self.collection.update_one(
            {"_id": campaign.id, "tenant_id": campaign.tenant_id, "status": expected_status},
            {"$set": {**CAMPAIGNS.dump_fields(campaign, *fields), "updated_at": datetime.now(UTC)}},
        )
        if not changed.matched_count:
            return None
        return CAMPAIGNS.load_or_none(await self.collection.find_one({"_id": campaign.id}))


class OccurrenceRepository(Repository):
    """One document per occurrence, keyed by campaign and time: the unique key is the lock between replicas."""

    collection_name = "occurrences"
    indexes = (
        IndexModel([("announced_at", ASCENDING), ("claimed_at", ASCENDING)]),
        IndexModel([("campaign_id", ASCENDING), ("at", DESCENDING)]),
        IndexModel([("idempotency_key", ASCENDING)], unique=True),
    )

    async def claim(self, occurrence: Occurrence) -> bool:
        """Whether this replica is the one to announce the occurrence: False when another claimed it first."""
        try:
            await self.collection.insert_one(OCCURRENCES.dump(occurrence))
        except DuplicateKeyError:
            return False
        return True

    async def unannounced(self, claimed_before: datetime) -> list[Occurrence]:
        """Occurrences whose announcer stopped between claiming and announcing."""
        cursor = self.collection.find({"announced_at": None, "claimed_at": {"$lt": claimed_before}})
        return [OCCURRENCES.load(doc) async for doc in cursor]

    async def save(self, occurrence: Occurrence, *fields: str) -> None:
        """Store the named fields of the occurrence (those its last change touched)."""
        await self.collection.update_one({"_id": occurrence.id}, {"$set": OCCURRENCES.dump_fields(occurrence, *fields)})

    async def by_idempotency_key(self, key: str) -> Occurrence | None:
        return OCCURRENCES.load_or_none(await self.collection.find_one({"idempotency_key": key}))

    async def of_campaign(self, campaign_id: str, limit: int = 50) -> list[Occurrence]:
        cursor = self.collection.find({"campaign_id": campaign_id}).sort("at", DESCENDING).limit(limit)
        return [OCCURRENCES.load(doc) async for doc in cursor]
