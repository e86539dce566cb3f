"""Occurrences in the campaign's time zone: DST changes, month ends, leap years, catch-up after downtime."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from publipost_scheduler.domain import Recurrence, occurrence_to_fire

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def local(instants: list[datetime], zone: ZoneInfo) -> list[str]:
    return [i.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") for i in instants]


def test_weekly_0230_on_the_paris_spring_forward_sunday_fires_once_after_the_jump():
    sundays = Recurrence("weekly", "Europe/Paris", weekday=6, time_of_day=time(2, 30))
    start = datetime(2027, 3, 20, tzinfo=UTC)
    assert local(sundays.upcoming(start, CREATED, 3), PARIS) == [
        "2027-03-21 02:30 CET",
        "2027-03-28 03:30 CEST",  # 02:30 does not exist that day
        "2027-04-04 02:30 CEST",
    ]


def test_weekly_0130_on_the_new_york_fall_back_sunday_fires_once_at_its_first_instance():
    sundays = Recurrence("weekly", "America/New_York", weekday=6, time_of_day=time(1, 30))
    occurrences = sundays.upcoming(datetime(2027, 10, 30, tzinfo=UTC), CREATED, 3)
    assert local(occurrences, NEW_YORK) == ["2027-10-31 01:30 EDT", "2027-11-07 01:30 EDT", "2027-11-14 01:30 EST"]
    assert occurrences[1] - occurrences[0] == timedelta(days=7)  # one firing on the day 01:30 happens twice
    assert occurrences[2] - occurrences[1] == timedelta(days=7, hours=1)


def test_new_york_spring_forward_gap():
    sundays = Recurrence("weekly", "America/New_York", weekday=6, time_of_day=time(2, 30))
    assert local(sundays.upcoming(datetime(2027, 3, 13, tzinfo=UTC), CREATED, 2), NEW_YORK) == [
        "2027-03-14 03:30 EDT",
        "2027-03-21 02:30 EDT",
    ]


def test_the_31st_means_the_last_day_of_shorter_months_including_leap_februaries():
    monthly = Recurrence("monthly", "Europe/Paris", day=31, time_of_day=time(9, 0))
    days = [o.astimezone(PARIS).date().isoformat() for o in monthly.upcoming(datetime(2027, 12, 1, tzinfo=UTC), CREATED, 5)]
    assert days == ["2027-12-31", "2028-01-31", "2028-02-29", "2028-03-31", "2028-04-30"]
    assert monthly.upcoming(datetime(2026, 2, 1, tzinfo=UTC), CREATED, 1)[0].astimezone(PARIS).day == 28


def test_once_and_now():
    at = datetime(2027, 6, 1, 10, 0, tzinfo=PARIS)
    once = Recurrence("once", at=at)
    assert once.next_after(datetime(2027, 1, 1, tzinfo=UTC), CREATED) == at.astimezone(UTC)
    assert once.next_after(at.astimezone(UTC), CREATED) is None
    now = Recurrence("now")
    assert now.next_after(CREATED - timedelta(seconds=1), CREATED) == CREATED
    assert now.next_after(CREATED, CREATED) is None


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [("latest", datetime(2027, 1, 25, 8, 0, tzinfo=UTC)), ("skip", None)],
)
def test_after_three_weeks_down_catch_up_fires_the_latest_once_or_skips(catch_up, expected):
    mondays = Recurrence("weekly", "Europe/Paris", weekday=0, time_of_day=time(9, 0))
    due = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
    now = datetime(2027, 1, 27, 12, 0, tzinfo=UTC)
    assert occurrence_to_fire(mondays, due, now, CREATED, catch_up, grace=timedelta(minutes=5)) == expected


def test_an_occurrence_on_time_fires_whatever_the_policy():
    mondays = Recurrence("weekly", "Europe/Paris", weekday=0, time_of_day=time(9, 0))
    due = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
    fired = occurrence_to_fire(mondays, due, due + timedelta(seconds=2), CREATED, "skip", grace=timedelta(minutes=5))
    assert fired == due
