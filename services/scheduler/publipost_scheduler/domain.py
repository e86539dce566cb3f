"""Campaigns, their recurrence and their occurrences, without a broker or a database.

Times are computed in the campaign's time zone and stored in UTC. Across DST:
a wall time that does not exist (02:30 on a spring-forward day in Paris) fires
once, at the same distance after the jump (03:30 local); a wall time that
exists twice (01:30 on a fall-back day in New York) fires once, at its first
instance.
"""

import calendar
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo

from publipost_contracts import deterministic_id
from publipost_refusals import Conflict

RecurrenceKind = Literal["now", "once", "weekly", "monthly"]
CatchUp = Literal["latest", "skip"]


class CampaignStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DONE = "done"  # a one-off campaign that has run
    DELETED = "deleted"  # hidden, never fires again; its occurrences stay as history


class CampaignConflict(Conflict):
    """The change asked for does not fit the campaign's state."""


@dataclass(frozen=True)
class Recurrence:
    kind: RecurrenceKind
    timezone: str = "Europe/Paris"
    at: datetime | None = None  # once: an aware date and time
    weekday: int | None = None  # weekly: 0 = Monday
    day: int | None = None  # monthly: 1-31, past the month's end means its last day
    time_of_day: time | None = None  # weekly and monthly: wall time in `timezone`

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "Recurrence":
        wall = doc.get("time_of_day")
        return cls(**{**doc, "time_of_day": time.fromisoformat(wall) if wall else None})

    def to_document(self) -> dict[str, Any]:
        """As stored: the database keeps datetimes, not times of day."""
        doc = asdict(self)
        doc["time_of_day"] = self.time_of_day.strftime("%H:%M") if self.time_of_day else None
        return doc

    def next_after(self, instant: datetime, created_at: datetime) -> datetime | None:
        """The first occurrence strictly after `instant` (UTC), or None when there is no more."""
        if self.kind == "now":
            return created_at if created_at > instant else None
        if self.kind == "once":
            assert self.at is not None
            at = self.at.astimezone(UTC)
            return at if at > instant else None
        return next(o for o in self._wall_occurrences(instant) if o > instant)

    def upcoming(self, instant: datetime, created_at: datetime, count: int) -> list[datetime]:
        """The next `count` occurrences after `instant`, for people to check a schedule."""
        found: list[datetime] = []
        while len(found) < count and (nxt := self.next_after(instant, created_at)) is not None:
            found.append(nxt)
            instant = nxt
        return found

    def _wall_occurrences(self, instant: datetime) -> Iterator[datetime]:
        assert self.time_of_day is not None
        local_day = instant.astimezone(self.zone).date() - timedelta(days=1)
        while True:
            if self._falls_on(local_day):
                yield wall_time_to_utc(local_day, self.time_of_day, self.zone)
            local_day += timedelta(days=1)

    def _falls_on(self, day: date) -> bool:
        if self.kind == "weekly":
            return day.weekday() == self.weekday
        assert self.day is not None
        return day.day == min(self.day, calendar.monthrange(day.year, day.month)[1])


def wall_time_to_utc(day: date, wall: time, zone: ZoneInfo) -> datetime:
    # fold=0: a time in a spring-forward gap is read with the offset before the jump (so it lands
    # after it), and a time that repeats in autumn is its first instance.
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


def occurrence_to_fire(
    recurrence: Recurrence, due: datetime, now: datetime, created_at: datetime, catch_up: CatchUp, grace: timedelta
) -> datetime | None:
    """Which occurrence to fire now that `due` has come: catch-up after downtime fires the latest missed
    occurrence once ("latest") or only one that is not late by more than `grace` ("skip")."""
    latest = due
    while (following := recurrence.next_after(latest, created_at)) is not None and following <= now:
        latest = following
    if catch_up == "skip" and now - latest > grace:
        return None
    return latest


@dataclass(frozen=True)
class Occurrence:
    campaign_id: str
    at: datetime

    @property
    def key(self) -> str:
        return str(deterministic_id("campaign.occurrence", self.campaign_id, self.at.isoformat()))

    @property
    def idempotency_key(self) -> str:
        """Fixed by campaign and time: however often it is announced, the request is handled once."""
        return f"campaign-{self.campaign_id}-{self.at.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"

    def document_date(self, zone: ZoneInfo) -> str:
        """The date a re-run merge prints: the occurrence's own day, in the campaign's time zone."""
        return self.at.astimezone(zone).strftime("%d/%m/%Y")


def pause(status: CampaignStatus) -> CampaignStatus:
    if status in (CampaignStatus.DONE, CampaignStatus.DELETED):
        raise CampaignConflict(f"the campaign is {status}; there is nothing to pause")
    return CampaignStatus.PAUSED


def resume(status: CampaignStatus) -> CampaignStatus:
    if status in (CampaignStatus.DONE, CampaignStatus.DELETED):
        raise CampaignConflict(f"the campaign is {status}; there is nothing to resume")
    return CampaignStatus.ACTIVE
