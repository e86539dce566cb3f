"""A campaign's state moves and an occurrence's outcome, without a broker or a database."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from publipost_contracts import Requester
from publipost_refusals import Conflict
from publipost_scheduler.domain import (
    Campaign,
    CampaignStatus,
    CampaignTerms,
    Message,
    Occurrence,
    OccurrenceOutcome,
    Recurrence,
    RerunMerge,
    SendDocument,
)
from publipost_scheduler.repository import CAMPAIGNS, OCCURRENCES

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # a Tuesday, 09:00 in Paris
TUESDAYS_AT_10 = Recurrence("weekly", "Europe/Paris", weekday=1, time_of_day=time(10, 0))
ALICE = Requester(subject="alice", roles=["operator"])


def terms(recurrence: Recurrence = TUESDAYS_AT_10, **changes: object) -> CampaignTerms:
    fields: dict = {"name": "Notices", "action": SendDocument(mailing_id="m-1"), **changes}
    return CampaignTerms(**fields, recurrence=recurrence, message=Message(to=["ops@acme.test"]))


def weekly() -> Campaign:
    return Campaign.create("c-1", "acme", terms(), ALICE, START)


def test_a_new_weekly_campaign_is_active_and_due_at_its_first_occurrence():
    campaign = weekly()

    assert campaign.status is CampaignStatus.ACTIVE
    assert campaign.next_run_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert [o.isoformat() for o in campaign.upcoming(2)] == ["2026-12-01T10:00:00+01:00", "2026-12-08T10:00:00+01:00"]


def test_a_campaign_to_send_now_is_due_at_once_and_done_once_moved_past():
    campaign = Campaign.create("c-2", "acme", terms(Recurrence("now")), ALICE, START)
    assert campaign.next_run_at == START

    fired = campaign.occurrence_due(START, timedelta(minutes=5))
    campaign.move_past(fired, START)

    assert fired == START
    assert (campaign.status, campaign.next_run_at, campaign.last_run_at) == (CampaignStatus.DONE, None, START)


def test_pause_shows_no_occurrence_and_resume_does_not_replay_what_was_missed():
    campaign = weekly()
    campaign.pause()
    assert campaign.status is CampaignStatus.PAUSED and campaign.upcoming(5) == []

    campaign.resume(START + timedelta(days=14, hours=3))

    assert campaign.status is CampaignStatus.ACTIVE
    assert campaign.next_run_at == datetime(2026, 12, 22, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("change", ["pause", "resume"])
def test_a_done_campaign_can_be_neither_paused_nor_resumed(change):
    campaign = Campaign.create("c-3", "acme", terms(Recurrence("now")), ALICE, START)
    campaign.move_past(START, START)

    with pytest.raises(Conflict, match=f"the campaign is done; there is nothing to {change}"):
        campaign.pause() if change == "pause" else campaign.resume(START)


def test_an_edit_keeps_a_paused_campaign_paused_and_sends_as_its_editor():
    campaign = weekly()
    campaign.pause()
    bob = Requester(subject="bob", roles=["operator"])

    campaign.edit(terms(name="Reminders"), bob, START + timedelta(days=1))

    assert (campaign.name, campaign.status, campaign.requested_by) == ("Reminders", CampaignStatus.PAUSED, bob)
    assert campaign.next_run_at == datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def test_a_deleted_campaign_is_due_no_more():
    campaign = weekly()
    campaign.delete()

    assert (campaign.status, campaign.next_run_at) == (CampaignStatus.DELETED, None)


def test_an_occurrence_is_keyed_by_campaign_and_time_and_keeps_what_the_campaign_said():
    campaign = weekly()
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    occurrence = Occurrence.of(campaign, at, START)
    campaign.edit(terms(name="Renamed"), ALICE, START)

    assert occurrence.idempotency_key == "campaign-c-1-20261201T090000Z"
    assert occurrence.id == Occurrence.of(campaign, at, START + timedelta(hours=1)).id
    assert (occurrence.campaign.name, occurrence.campaign.requested_by) == ("Notices", ALICE)
    assert occurrence.document_date() == "01/12/2026"
    assert occurrence.email_date() is None  # the campaign does not advance the document's date


def test_an_occurrence_that_advances_the_date_names_its_own_day_in_the_campaigns_zone():
    campaign = Campaign.create("c-8", "acme", terms(auto_increment_date=True), ALICE, START)
    late_monday_in_utc = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)  # already Tuesday in Paris

    occurrence = Occurrence.of(campaign, late_monday_in_utc, START)

    assert occurrence.email_date() == date(2026, 12, 8)
    assert occurrence.document_date() == "08/12/2026"


def test_an_occurrence_records_its_outcome_and_its_error():
    rerun = RerunMerge(template_id="t", segment_id="s")
    occurrence = Occurrence.of(Campaign.create("c-4", "acme", terms(action=rerun), ALICE, START), START, START)

    occurrence.announced(START, "no segment 's' in the recipient directory")
    assert (occurrence.announced_at, occurrence.outcome) == (START, OccurrenceOutcome.REFUSED)
    assert occurrence.error == "no segment 's' in the recipient directory"
    occurrence.rerun_failed("failed")
    assert occurrence.error == "the re-run mailing is failed"
    occurrence.rerun_ready("m-9")
    assert (occurrence.dispatched_mailing_id, occurrence.outcome, occurrence.error) == (
        "m-9",
        OccurrenceOutcome.ANNOUNCED,
        None,
    )
    occurrence.completed(sent=195, failed=5)
    assert (occurrence.outcome, occurrence.sent, occurrence.failed, occurrence.error) == ("sent", 195, 5, None)


def test_an_occurrence_whose_dispatch_is_refused_shows_why_and_sent_nothing():
    occurrence = Occurrence.of(weekly(), START, START)
    occurrence.announced(START)
    assert (occurrence.outcome, occurrence.error) == (OccurrenceOutcome.ANNOUNCED, None)

    occurrence.refused("mailing 'm-1' is replaced, not ready to send")

    assert (occurrence.outcome, occurrence.sent) == (OccurrenceOutcome.REFUSED, None)
    assert occurrence.error == "mailing 'm-1' is replaced, not ready to send"


def test_a_published_mailing_is_sent_as_it_is_every_time_and_a_re_run_mailing_is_regrouped():
    rerun = Campaign.create("c-6", "acme", terms(action=RerunMerge(template_id="t", segment_id="s")), ALICE, START)

    assert Occurrence.of(weekly(), START, START).sends_its_source is True
    assert Occurrence.of(rerun, START, START).sends_its_source is False


def test_an_occurrence_keeps_the_campaigns_document_type_account_and_e_mail_template():
    message = Message(account_id="acc-1", email_template_id="et-1")
    campaign = Campaign.create("c-7", "acme", terms(document_type="staff_list"), ALICE, START)
    campaign.message = message

    occurrence = Occurrence.of(campaign, START, START)
    campaign.edit(terms(document_type="invoice"), ALICE, START)

    assert occurrence.campaign.document_type == "staff_list"
    assert (occurrence.campaign.message.account_id, occurrence.campaign.message.email_template_id) == ("acc-1", "et-1")


def test_a_campaign_is_stored_with_its_wall_time_as_text_and_loads_back():
    campaign = weekly()

    document = CAMPAIGNS.dump(campaign)

    assert document["_id"] == "c-1"
    assert document["recurrence"]["time_of_day"] == "10:00"
    assert document["action"] == {"kind": "send_document", "mailing_id": "m-1"}
    assert document["requested_by"] == {"subject": "alice", "roles": ["operator"], "email": None}
    assert CAMPAIGNS.load(document) == campaign


def test_documents_stored_before_last_run_at_and_requested_by_still_load():
    stored = {
        "_id": "c-5",
        "tenant_id": "acme",
        "name": "Old",
        "document_type": None,
        "recurrence": {"kind": "monthly", "timezone": "Europe/Paris", "day": 31, "time_of_day": "09:00"},
        "catch_up": "skip",
        "action": {"kind": "rerun_merge", "template_id": "t", "segment_id": "s"},
        "message": {"subject": "Hi", "to": ["a@acme.test"]},
        "auto_increment_date": True,
        "status": "active",
        "next_run_at": START,
        "scheduled_at": START,
        "created_at": START,
        "updated_at": START,
    }

    campaign = CAMPAIGNS.load(stored)

    assert campaign.recurrence.time_of_day == time(9, 0)
    assert campaign.action == RerunMerge(template_id="t", segment_id="s", template_version=None, custom_fields={})
    assert (campaign.requested_by, campaign.last_run_at, campaign.message.cc) == (None, None, [])
    occurrence = OCCURRENCES.dump(Occurrence.of(campaign, START, START))
    assert occurrence["campaign"]["action"]["kind"] == "rerun_merge" and occurrence["announced_at"] is None
    # An occurrence stored before outcomes were recorded loads as announced, with no document type.
    del occurrence["outcome"], occurrence["sent"], occurrence["failed"], occurrence["campaign"]["document_type"]
    loaded = OCCURRENCES.load(occurrence)
    assert (loaded.outcome, loaded.sent, loaded.campaign.document_type) == (OccurrenceOutcome.ANNOUNCED, None, None)
