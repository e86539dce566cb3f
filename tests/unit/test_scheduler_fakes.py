"""The in-memory repositories the composition-root tests use answer like the real ones."""

import inspect
from datetime import UTC, datetime, time, timedelta

import pytest
from publipost_contracts import Requester
from publipost_scheduler.domain import Campaign, CampaignTerms, Message, Occurrence, Recurrence, SendDocument
from publipost_scheduler.repository import CampaignRepository, OccurrenceRepository

from tests.unit.fakes.scheduler import FakeCampaignRepository, FakeOccurrenceRepository

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if inspect.iscoroutinefunction(member) and not name.startswith("_")
    }


@pytest.mark.parametrize(
    ("real", "fake"), [(CampaignRepository, FakeCampaignRepository), (OccurrenceRepository, FakeOccurrenceRepository)]
)
def test_a_fake_has_the_real_repositorys_methods(real, fake):
    assert _public(fake) == _public(real)


async def test_the_fake_campaigns_keep_the_compare_and_set_of_the_real_ones():
    campaigns, occurrences = FakeCampaignRepository(), FakeOccurrenceRepository()
    recurrence = Recurrence("weekly", "Europe/Paris", weekday=1, time_of_day=time(10, 0))
    terms = CampaignTerms(name="n", recurrence=recurrence, action=SendDocument(mailing_id="m"), message=Message())
    await campaigns.add(Campaign.create("c", "acme", terms, Requester(subject="s"), START))

    (due,) = await campaigns.due(START + timedelta(hours=2))
    fired_at = due.next_run_at
    assert await occurrences.claim(Occurrence.of(due, fired_at, START))
    assert not await occurrences.claim(Occurrence.of(due, fired_at, START))
    due.move_past(fired_at, START + timedelta(hours=2))
    await campaigns.advance(due, fired_at)

    assert await campaigns.due(START + timedelta(hours=2)) == []
    assert await campaigns.change_if(due, "paused", "status") is None
    assert len(await occurrences.of_campaign("c")) == 1
