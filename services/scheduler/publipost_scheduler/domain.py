"""Campaigns, their recurrence and their occurrences, without a broker or a database.

Times are computed in the campaign's time zone and stored in UTC. Across DST:
a wall time that does not exist (02:30 on a spring-forward day in Paris) fires
once, at the same distance after the jump (03:30 local); a wall time that
exists twice (01:30 on a fall-back day in New York) fires once, at its first
instance.
"""

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from publipost_contracts import Requester, deterministic_id
from publipost_refusals import Conflict, NotFound
from pydantic import Field, PlainSerializer

RecurrenceKind = Literal["now", "once", "weekly", "monthly"]
CatchUp = Literal["latest", "skip"]


class CampaignStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DONE = "done"  # a one-off campaign that has run
    DELETED = "deleted"  # hidden, never fires again; its occurrences stay as history


class CampaignConflict(Conflict):
    """The change asked for does not fit the campaign's state."""


# The database keeps datetimes, not times of day: a wall time is stored (and shown) as "HH:MM".
WallTime = Annotated[time | None, PlainSerializer(lambda wall: wall.strftime("%H:%M") if wall else None)]


@dataclass(frozen=True)
class Recurrence:
    kind: RecurrenceKind
    timezone: str = "Europe/Paris"
    at: datetime | None = None  # once: an aware date and time
    weekday: int | None = None  # weekly: 0 = Monday
    day: int | None = None  # monthly: 1-31, past the month's end means its last day
    time_of_day: WallTime = None  # weekly and monthly: wall time in `timezone`

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

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


# --- what a campaign sends ----------------------------------------------------


@dataclass(kw_only=True)
class SendDocument:
    """Each occurrence sends this published mailing."""

    kind: Literal["send_document"] = "send_document"
    mailing_id: str


@dataclass(kw_only=True)
class RerunMerge:
    """Each occurrence re-runs this merge on the segment's recipients as they are then, and sends its mailing."""

    kind: Literal["rerun_merge"] = "rerun_merge"
    template_id: str
    template_version: int | None = None
    segment_id: str
    custom_fields: dict[str, str] = field(default_factory=dict)


Action = Annotated[SendDocument | RerunMerge, Field(discriminator="kind")]


@dataclass(kw_only=True)
class Message:
    """The e-mail of each occurrence's dispatch, field for field as a dispatch request takes it."""

    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    reply_to: str | None = None
    subject: str = ""  # empty: the e-mail template's or the document type's preset (dispatch)
    body: str = "Please find your document attached.\n"
    separate_sends: bool = False
    copy_to_sender: bool = False
    to: list[str] = field(default_factory=list)
    account_id: str | None = None  # the tenant's sending account; dispatch's own SMTP server when absent
    email_template_id: str | None = None  # an e-mail template of the template service: replaces subject and body


@dataclass(kw_only=True)
class CampaignTerms:
    """What a person sets on a campaign: what it sends, to whom, and when."""

    name: str
    document_type: str | None = None
    recurrence: Recurrence
    catch_up: CatchUp = "latest"
    action: Action
    message: Message
    auto_increment_date: bool = False


# --- campaigns ----------------------------------------------------------------


class CampaignNotFound(NotFound):
    def __init__(self, campaign_id: str) -> None:
        super().__init__(f"no campaign {campaign_id!r}")


class CampaignChanged(Conflict):
    """Someone else changed the campaign between reading it and writing this change."""

    def __init__(self) -> None:
        super().__init__("the campaign changed meanwhile; read it again")


# A campaign to send "now", or at a time equal to the request's, counts as due at once.
_EPSILON = timedelta(microseconds=1)


@dataclass(kw_only=True)
class Campaign(CampaignTerms):
    """A campaign's terms, and where it stands."""

    id: str
    tenant_id: str
    requested_by: Requester | None = None  # whoever set the terms last: the campaign's dispatches ask as them
    status: CampaignStatus
    next_run_at: datetime | None
    scheduled_at: datetime  # when the terms were set: a "now" campaign is due then
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None = None

    @classmethod
    def create(
        cls, campaign_id: str, tenant_id: str, terms: CampaignTerms, requested_by: Requester, now: datetime
    ) -> "Campaign":
        following = terms.recurrence.next_after(now - _EPSILON, now)
        return cls(
            id=campaign_id,
            tenant_id=tenant_id,
            **_terms(terms),
            requested_by=requested_by,
            status=CampaignStatus.ACTIVE if following else CampaignStatus.DONE,
            next_run_at=following,
            scheduled_at=now,
            created_at=now,
            updated_at=now,
        )

    def edit(self, terms: CampaignTerms, requested_by: Requester, now: datetime) -> None:
        """New terms; a paused campaign stays paused, a done one fires again if the new recurrence has more."""
        for name, value in _terms(terms).items():
            setattr(self, name, value)
        self.requested_by = requested_by
        self.next_run_at = self.recurrence.next_after(now - _EPSILON, now)
        self.scheduled_at = now
        if self.status != CampaignStatus.PAUSED:
            self.status = CampaignStatus.ACTIVE if self.next_run_at else CampaignStatus.DONE

    def pause(self) -> None:
        self._refuse_when_over("pause")
        self.status = CampaignStatus.PAUSED

    def resume(self, now: datetime) -> None:
        """Firing goes on from the next occurrence after `now`: what was missed while paused is not replayed."""
        self._refuse_when_over("resume")
        self.next_run_at = self.recurrence.next_after(now, self.scheduled_at)
        self.status = CampaignStatus.ACTIVE if self.next_run_at else CampaignStatus.DONE

    def delete(self) -> None:
        self.status = CampaignStatus.DELETED
        self.next_run_at = None

    def _refuse_when_over(self, change: str) -> None:
        if self.status in (CampaignStatus.DONE, CampaignStatus.DELETED):
            raise CampaignConflict(f"the campaign is {self.status}; there is nothing to {change}")

    def occurrence_due(self, now: datetime, grace: timedelta) -> datetime | None:
        """The occurrence to fire now that `next_run_at` has come, or None when catch-up skips it."""
        assert self.next_run_at is not None
        return occurrence_to_fire(self.recurrence, self.next_run_at, now, self.scheduled_at, self.catch_up, grace)

    def move_past(self, fired_at: datetime | None, now: datetime) -> None:
        """On to the first occurrence after `now`; a campaign without more is done."""
        self.next_run_at = self.recurrence.next_after(now, self.scheduled_at)
        self.last_run_at = fired_at or self.last_run_at
        if self.next_run_at is None:
            self.status = CampaignStatus.DONE

    def upcoming(self, count: int) -> list[datetime]:
        """The next `count` occurrences, in the campaign's time zone; none unless it is active."""
        if self.status != CampaignStatus.ACTIVE or self.next_run_at is None:
            return []
        first = self.next_run_at
        zone = self.recurrence.zone
        return [o.astimezone(zone) for o in (first, *self.recurrence.upcoming(first, self.scheduled_at, count - 1))]

    def snapshot(self) -> "CampaignSnapshot":
        return CampaignSnapshot(
            name=self.name,
            document_type=self.document_type,
            timezone=self.recurrence.timezone,
            action=self.action,
            message=self.message,
            auto_increment_date=self.auto_increment_date,
            requested_by=self.requested_by,
        )


def _terms(terms: CampaignTerms) -> dict[str, object]:
    return {name: getattr(terms, name) for name in CampaignTerms.__dataclass_fields__}


# --- occurrences --------------------------------------------------------------


@dataclass(kw_only=True)
class CampaignSnapshot:
    """What the campaign said when an occurrence fired: an edit afterwards does not change it."""

    name: str
    document_type: str | None = None  # what the documents are: the send history's filter
    timezone: str
    action: Action
    message: Message
    auto_increment_date: bool = False
    requested_by: Requester | None = None


class OccurrenceOutcome(StrEnum):
    ANNOUNCED = "announced"  # asked for; its dispatch has not ended yet
    SENT = "sent"  # its dispatch completed: `sent` and `failed` count the documents
    REFUSED = "refused"  # nothing went: `error` says why


@dataclass(kw_only=True)
class Occurrence:
    """One firing of a campaign, keyed by campaign and time: whoever stores it first announces it."""

    id: str
    campaign_id: str
    tenant_id: str
    at: datetime
    idempotency_key: str
    campaign: CampaignSnapshot
    claimed_at: datetime
    announced_at: datetime | None = None
    dispatched_mailing_id: str | None = None
    outcome: OccurrenceOutcome = OccurrenceOutcome.ANNOUNCED
    sent: int | None = None
    failed: int | None = None
    error: str | None = None

    OUTCOME_FIELDS = ("outcome", "sent", "failed", "error")

    @classmethod
    def of(cls, campaign: Campaign, at: datetime, now: datetime) -> "Occurrence":
        return cls(
            id=str(deterministic_id("campaign.occurrence", campaign.id, at.isoformat())),
            campaign_id=campaign.id,
            tenant_id=campaign.tenant_id,
            at=at,
            # Fixed by campaign and time: however often it is announced, the request is handled once.
            idempotency_key=f"campaign-{campaign.id}-{at.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}",
            campaign=campaign.snapshot(),
            claimed_at=now,
        )

    def announced(self, now: datetime, error: str | None = None) -> None:
        """Announced; `error` when what it asks cannot be done until the campaign is fixed."""
        self.announced_at = now
        if error is not None:
            self.refused(error)

    def rerun_ready(self, mailing_id: str) -> None:
        """Its re-run merge's mailing is ready and sent for dispatch, whose answer is awaited."""
        self.dispatched_mailing_id = mailing_id
        self.outcome, self.error = OccurrenceOutcome.ANNOUNCED, None

    def rerun_failed(self, status: str) -> None:
        self.refused(f"the re-run mailing is {status}")

    def refused(self, reason: str) -> None:
        """Nothing went: the merge or the dispatch was refused, `reason` says why."""
        self.outcome, self.error = OccurrenceOutcome.REFUSED, reason

    def completed(self, sent: int, failed: int) -> None:
        """Its dispatch ended: how many documents went and how many did not (each one's reason is in the
        dispatch's deliveries)."""
        self.outcome, self.sent, self.failed, self.error = OccurrenceOutcome.SENT, sent, failed, None

    @property
    def sends_its_source(self) -> bool:
        """A published mailing is sent as it is at every occurrence, so its dispatch must not regroup it; a
        re-run merge's mailing is new each time and regroups like any other."""
        return isinstance(self.campaign.action, SendDocument)

    def document_date(self) -> str:
        """The date a re-run merge prints: the occurrence's own day, in the campaign's time zone."""
        return self.day().strftime("%d/%m/%Y")

    def email_date(self) -> date | None:
        """The date its e-mails' {date} names: the occurrence's day when the campaign advances the document's
        date at each send, whether it re-runs a merge or sends a published mailing; else the day of sending."""
        return self.day() if self.campaign.auto_increment_date else None

    def day(self) -> date:
        return self.at.astimezone(ZoneInfo(self.campaign.timezone)).date()
