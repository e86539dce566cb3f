"""`publipost campaigns …` against the scheduler's API answered from a table, and what `publipost dlq` says
before it reaches RabbitMQ (tests/integration/test_cli.py lists real dead-letter queues)."""

import json

import httpx
import pytest
from publipost_localstack.processes import free_port

from tests.unit.fakes.services_http import PROFILE, Terminal

CAMPAIGNS = f"{PROFILE.scheduler_url}/campaigns"
CAMPAIGN = {
    "id": "c1",
    "name": "Monthly statement",
    "document_type": "statement",
    "recurrence": {"kind": "monthly", "timezone": "Europe/Paris", "day": 31, "time": "08:00"},
    "catch_up": "latest",
    "action": {"kind": "send_document", "mailing_id": "m1"},
    "message": {},
    "auto_increment_date": False,
    "status": "active",
    "next_run_at": "2026-12-31T07:00:00Z",
    "next_occurrences": ["2026-12-31T08:00:00+01:00", "2027-01-31T08:00:00+01:00"],
    "created_at": "2026-11-01T00:00:00Z",
    "occurrences": [
        {
            "at": "2026-11-30T08:00:00+01:00",
            "idempotency_key": "k",
            "announced_at": "2026-11-30T07:00:01Z",
            "outcome": "sent",
            "sent": 40,
            "failed": 2,
            "error": None,
        }
    ],
}


@pytest.fixture
def terminal(tmp_path):
    return Terminal(tmp_path, env_credential="token")


def test_campaigns_are_listed_with_their_schedule_in_words(terminal):
    page = {"items": [CAMPAIGN], "total": 1, "page": 1, "per_page": 20}
    terminal.services.on("GET", CAMPAIGNS, page)

    result = terminal.run("campaigns", "list")

    assert result.exit_code == 0, result.output
    assert "c1  Monthly statement  active  monthly on day 31 at 08:00 Europe/Paris  2026-12-31 07:00" in result.output
    assert json.loads(terminal.run("campaigns", "list", "--json").output) == page


def test_a_campaign_is_shown_with_its_next_occurrences_and_what_each_sent(terminal):
    terminal.services.on("GET", f"{CAMPAIGNS}/c1", CAMPAIGN)

    result = terminal.run("campaigns", "show", "c1")

    assert result.exit_code == 0, result.output
    assert "sends mailing m1" in result.output
    assert "next: 2026-12-31 08:00, 2027-01-31 08:00" in result.output
    assert "2026-11-30 08:00 sent, sent 40, failed 2" in result.output


def test_pause_and_resume_show_the_campaign_as_it_now_is(terminal):
    terminal.services.on("POST", f"{CAMPAIGNS}/c1/pause", {**CAMPAIGN, "status": "paused"})
    terminal.services.on("POST", f"{CAMPAIGNS}/c1/resume", CAMPAIGN)

    assert "Monthly statement (c1): paused" in terminal.run("campaigns", "pause", "c1").output
    assert "Monthly statement (c1): active" in terminal.run("campaigns", "resume", "c1").output


def test_a_campaign_is_deleted_once_confirmed(terminal):
    terminal.services.on("DELETE", f"{CAMPAIGNS}/c1", httpx.Response(204))

    declined = terminal.run("campaigns", "delete", "c1", input="n\n")
    assert declined.exit_code == 1 and terminal.services.requests == []

    confirmed = terminal.run("campaigns", "delete", "c1", "--yes")
    assert confirmed.exit_code == 0
    assert "campaign c1 deleted" in confirmed.output


def test_a_campaign_of_another_tenant_is_the_scheduler_s_404(terminal):
    missing = httpx.Response(404, json={"detail": "no campaign 'c9' for this tenant"})
    terminal.services.on("POST", f"{CAMPAIGNS}/c9/pause", missing)

    result = terminal.run("campaigns", "pause", "c9")

    assert result.exit_code == 1
    assert "error: scheduler answered 404: no campaign 'c9' for this tenant" in result.output


def test_a_replay_names_which_messages_or_all(terminal):
    result = terminal.run("dlq", "replay", "merge.merge.requested")

    assert result.exit_code == 2
    assert "give --all or --message-id (one or more), not both" in result.output


def test_a_broker_out_of_reach_is_said_without_a_traceback(terminal):
    nobody = f"amqp://guest:guest@127.0.0.1:{free_port()}/"

    result = terminal.run("dlq", "list", "--rabbitmq-url", nobody)

    assert result.exit_code == 1
    assert result.output.startswith("error: cannot reach RabbitMQ: ")
    assert "Traceback" not in result.output
