"""In-memory stand-ins for the scheduler's repositories: same public async methods, same return types, and
the same guards (a deleted campaign is not found, compare-and-set on the status and on next_run_at, one
occurrence per idempotency key). Entities go in and out as copies, as they would through the database."""

import copy
from datetime import UTC, datetime

from publipost_scheduler.domain import Campaign, CampaignStatus, Occurrence


class FakeCampaignRepository:
    def __init__(self, *campaigns: Campaign) -> None:
        self.stored: dict[str, Campaign] = {c.id: copy.deepcopy(c) for c in campaigns}

    async def add(self, campaign: Campaign) -> None:
        self.stored[campaign.id] = copy.deepcopy(campaign)

    async def get(self, tenant_id: str, campaign_id: str) -> Campaign | None:
        campaign = self.stored.get(campaign_id)
        if campaign is None or campaign.tenant_id != tenant_id or campaign.status == CampaignStatus.DELETED:
            return None
        return copy.deepcopy(campaign)

    async def page(self, tenant_id: str, *, skip: int, limit: int) -> tuple[list[Campaign], int]:
        mine = [c for c in self.stored.values() if c.tenant_id == tenant_id and c.status != CampaignStatus.DELETED]
        mine.sort(key=lambda c: c.created_at, reverse=True)
        return [copy.deepcopy(c) for c in mine[skip : skip + limit]], len(mine)

    async def due(self, now: datetime, limit: int = 100) -> list[Campaign]:
        due = [
            c
            for c in self.stored.values()
            if c.status == CampaignStatus.ACTIVE and c.next_run_at is not None and c.next_run_at <= now
        ]
        due.sort(key=lambda c: c.next_run_at or now)
        return [copy.deepcopy(c) for c in due[:limit]]

    async def advance(self, campaign: Campaign, due: datetime) -> None:
        stored = self.stored.get(campaign.id)
        if stored is not None and stored.status == CampaignStatus.ACTIVE and stored.next_run_at == due:
            _copy_fields(campaign, stored, "next_run_at", "last_run_at", "status")

    async def change_if(self, campaign: Campaign, expected_status: str, *fields: str) -> Campaign | None:
        stored = self.stored.get(campaign.id)
        if stored is None or stored.tenant_id != campaign.tenant_id or stored.status != expected_status:
            return None
        _copy_fields(campaign, stored, *fields)
        stored.updated_at = datetime.now(UTC)
        return copy.deepcopy(stored)


class FakeOccurrenceRepository:
    def __init__(self) -> None:
        self.stored: dict[str, Occurrence] = {}

    async def claim(self, occurrence: Occurrence) -> bool:
        taken = {o.idempotency_key for o in self.stored.values()}
        if occurrence.id in self.stored or occurrence.idempotency_key in taken:
            return False
        self.stored[occurrence.id] = copy.deepcopy(occurrence)
        return True

    async def unannounced(self, claimed_before: datetime) -> list[Occurrence]:
        return [
            copy.deepcopy(o) for o in self.stored.values() if o.announced_at is None and o.claimed_at < claimed_before
        ]

    async def save(self, occurrence: Occurrence, *fields: str) -> None:
        if (stored := self.stored.get(occurrence.id)) is not None:
            _copy_fields(occurrence, stored, *fields)

    async def by_idempotency_key(self, key: str) -> Occurrence | None:
        found = next((o for o in self.stored.values() if o.idempotency_key == key), None)
        return copy.deepcopy(found)

    async def of_campaign(self, campaign_id: str, limit: int = 50) -> list[Occurrence]:
        mine = sorted(
            (o for o in self.stored.values() if o.campaign_id == campaign_id), key=lambda o: o.at, reverse=True
        )
        return [copy.deepcopy(o) for o in mine[:limit]]


def _copy_fields(source: object, target: object, *fields: str) -> None:
    for name in fields:
        setattr(target, name, copy.deepcopy(getattr(source, name)))
