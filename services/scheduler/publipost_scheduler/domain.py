"""Campaigns and their occurrences, without a broker or a database."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from publipost_contracts import deterministic_id


class CampaignStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DONE = "done"


class CampaignConflict(ValueError):
    """The change asked for does not fit the campaign's state."""


@dataclass(frozen=True)
class Occurrence:
    campaign_id: str
    at: datetime

    @property
    def dispatch_id(self) -> str:
        """Fixed by campaign and time: however often it is announced, dispatch sends it once."""
        return f"campaign-{self.campaign_id}-{self.at.strftime('%Y%m%dT%H%M%SZ')}"

    @property
    def key(self) -> str:
        return str(deterministic_id("campaign.occurrence", self.campaign_id, self.at.isoformat()))


def pause(status: CampaignStatus) -> CampaignStatus:
    if status is CampaignStatus.DONE:
        raise CampaignConflict("the campaign has already run; there is nothing to pause")
    return CampaignStatus.PAUSED


def resume(status: CampaignStatus) -> CampaignStatus:
    if status is CampaignStatus.DONE:
        raise CampaignConflict("the campaign has already run; there is nothing to resume")
    return CampaignStatus.ACTIVE
