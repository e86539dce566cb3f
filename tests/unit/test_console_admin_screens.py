"""The console's history, campaign and settings screens without a browser: the console's app driven over
ASGI, the services behind it faked by what they answer; what a person sees, what the services are asked."""

import json

import pytest
from publipost_console.admin import account_form, account_request
from publipost_console.campaigns import BadForm, form_of, request_of

from tests.unit.fakes.console import FakeServices, console_over, sign_in


@pytest.fixture
def services() -> FakeServices:
    return FakeServices()


@pytest.fixture
async def console(services):
    async for client in console_over(services):
        yield client


def entry(**overrides) -> dict:
    return {
        "send_id": "s-1",
        "kind": "dispatch",
        "dispatch_id": "d-1",
        "status": "failed",
        "to": ["three@reject.test"],
        "cc": [],
        "bcc": [],
        "subject": "Your notice 3",
        "at": "2026-12-04T10:00:00Z",
        "document": {"document_id": "doc-3", "document_number": "3", "name": "3.pdf", "mailing_id": "m-1"},
        "customer_number": "C3",
        "document_type": "notice",
        "error": "550 mailbox unavailable",
        "message_id": None,
        "smtp_reply": "550 5.1.1 no such user",
        "attempts": 1,
        "address_rule": "record",
        **overrides,
    }


async def test_the_history_is_filtered_by_what_the_person_chose_and_shows_each_error(console, services):
    services.answer("dispatch", "GET", "/history", {"items": [entry()], "page": 1, "per_page": 50, "has_next": True})
    sign_in(console, ["viewer"])
    page = await console.get("/history", params={"document_type": "notice", "status": "failed", "q": "notice"})
    assert page.status_code == 200
    asked = services.sent("dispatch", "GET", "/history").url.params
    assert dict(asked) == {"document_type": "notice", "status": "failed", "q": "notice", "page": "1"}
    assert "550 mailbox unavailable" in page.text and "three@reject.test" in page.text
    assert "/history?document_type=notice&amp;status=failed&amp;q=notice&amp;page=2" in page.text


async def test_a_failed_email_is_sent_again_to_the_same_addresses(console, services):
    services.answer("dispatch", "POST", "/sends", {"send_id": "s-2"}, status=202)
    sign_in(console, ["operator"])
    answer = await console.post(
        "/history/retry",
        data={"mailing_id": "m-1", "document_id": "doc-3", "to": "a@example.test,b@example.test", "subject": "S"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/history?retried=s-2"
    sent = json.loads(services.sent("dispatch", "POST", "/sends").content)
    assert sent["to"] == ["a@example.test", "b@example.test"] and sent["document_id"] == "doc-3"


def stored_campaign(**overrides) -> dict:
    return {
        "id": "c-1",
        "name": "Monthly notices",
        "document_type": "notice",
        "recurrence": {
            "kind": "monthly",
            "timezone": "Europe/Paris",
            "at": None,
            "weekday": None,
            "day": 5,
            "time_of_day": "09:30",
        },
        "catch_up": "latest",
        "action": {"kind": "send_document", "mailing_id": "m-1"},
        "message": {
            "cc": ["boss@example.test"],
            "bcc": [],
            "reply_to": "desk@example.test",
            "subject": "S",
            "body": "B",
            "separate_sends": True,
            "copy_to_sender": False,
            "to": [],
            "account_id": None,
            "email_template_id": "e-1",
        },
        "auto_increment_date": True,
        "status": "active",
        "next_run_at": "2027-01-05T08:30:00Z",
        "next_occurrences": ["2027-01-05T09:30:00+01:00", "2027-02-05T09:30:00+01:00"],
        "created_at": "2026-12-01T00:00:00Z",
        "occurrences": [],
        **overrides,
    }


def test_a_campaign_edited_in_the_form_keeps_what_the_form_does_not_show():
    form = form_of(stored_campaign())
    assert form["kind"] == "monthly" and form["day"] == "5" and form["time"] == "09:30"
    form |= {"kind": "weekly", "weekday": "2", "time": "08:00"}
    body = request_of(form, stored_campaign())
    assert body["recurrence"] == {"kind": "weekly", "timezone": "Europe/Paris", "weekday": 2, "time": "08:00"}
    assert body["cc"] == ["boss@example.test"] and body["reply_to"] == "desk@example.test"
    assert body["separate_sends"] is True and body["auto_increment_date"] is True
    assert body["mailing_id"] == "m-1" and body["email_template_id"] == "e-1"


def test_a_merge_rerun_campaign_keeps_its_merge_when_edited():
    rerun = {
        "kind": "rerun_merge",
        "template_id": "t-1",
        "template_version": None,
        "segment_id": "s-1",
        "custom_fields": {},
    }
    body = request_of(form_of(stored_campaign(action=rerun)), stored_campaign(action=rerun))
    assert body["merge"] == {"template_id": "t-1", "template_version": None, "segment_id": "s-1", "custom_fields": {}}
    assert "mailing_id" not in body


def test_a_one_off_campaigns_time_is_given_in_its_zone_with_its_offset():
    form = form_of(None) | {"name": "Once", "kind": "once", "at": "2027-07-01T10:00", "mailing_id": "m-1"}
    assert request_of(form, None)["recurrence"]["at"] == "2027-07-01T10:00:00+02:00"
    with pytest.raises(BadForm, match="recurrence.at"):
        request_of(form | {"at": "tomorrow"}, None)


async def test_the_campaigns_list_shows_each_ones_next_occurrences(console, services):
    page = {"items": [stored_campaign()], "total": 1, "page": 1, "per_page": 20}
    services.answer("scheduler", "GET", "/campaigns", page)
    sign_in(console, ["operator"])
    shown = await console.get("/campaigns", headers={"Accept-Language": "fr"})
    assert "Chaque mois le 5 à 09:30 (Europe/Paris)" in shown.text
    assert "2027-01-05 09:30" in shown.text and "2027-02-05 09:30" in shown.text


@pytest.mark.parametrize("roles", [["operator"], ["viewer"], ["integrator"]])
async def test_settings_are_neither_linked_nor_shown_to_anyone_but_an_admin(console, services, roles):
    services.answer("merge", "GET", "/mailings", {"items": [], "total": 0, "page": 1, "per_page": 20})
    sign_in(console, roles)
    assert 'href="/settings"' not in (await console.get("/mailings")).text
    refused = await console.get("/settings")
    assert refused.status_code == 403 and "Settings are for the tenant&#39;s admins." in refused.text
    assert not [r for r in services.asked if r.url.path in ("/accounts", "/settings", "/api-keys")]


async def test_the_tenants_settings_are_put_back_whole_changed_where_the_form_says(console, services):
    services.answer("merge", "GET", "/settings", {"combined_page_limit": 500, "language": "en", "later_field": 7})
    services.answer("merge", "PUT", "/settings", {})
    services.answer(
        "dispatch", "GET", "/settings/sending", {"email_enabled": True, "sender_prefix": "acme", "sender": "x"}
    )
    services.answer("dispatch", "PUT", "/settings/sending", {})
    sign_in(console, ["admin"])
    answer = await console.post(
        "/settings/tenant", data={"language": "fr", "combined_page_limit": "", "sender_prefix": "acme"}
    )
    assert answer.status_code == 303
    assert json.loads(services.sent("merge", "PUT", "/settings").content) == {
        "combined_page_limit": 500,
        "language": "fr",
        "later_field": 7,
    }
    assert json.loads(services.sent("dispatch", "PUT", "/settings/sending").content) == {
        "email_enabled": False,  # its box was left unticked
        "sender_prefix": "acme",
    }


def test_an_edited_account_keeps_its_password_and_what_the_form_does_not_show():
    stored = {
        "name": "Office",
        "host": "smtp.example.test",
        "port": 587,
        "tls": "starttls",
        "verify_certificate": True,
        "login": "me",
        "password_set": True,
        "from_address": "office@example.test",
        "from_name": None,
        "reply_to": None,
        "limits": {"rate_per_s": None, "connections": 4, "daily_cap": 1000},
        "pause_after_errors": 5,
        "personal": False,
        "shared_with_users": ["u-1"],
        "shared_with_roles": ["operator"],
    }
    body = account_request(account_form(stored) | {"name": "Office 2"}, stored)
    assert "password" not in body
    assert body["name"] == "Office 2" and body["limits"] == {
        "rate_per_s": None,
        "connections": "4",
        "daily_cap": "1000",
    }
    assert body["shared_with_users"] == ["u-1"] and body["pause_after_errors"] == 5
    assert account_request(account_form(stored) | {"password": "new"}, stored)["password"] == "new"


async def test_an_empty_quota_is_no_limit_and_the_backend_the_services_default(console, services):
    services.answer("render-pdf", "GET", "/usage", {"tenant_id": "demo"})
    for path in ("/quotas/demo", "/backends/demo", "/backends/demo/overflow"):
        services.answer("render-pdf", "PUT", path, {})
    sign_in(console, ["admin"])
    answer = await console.post("/settings/conversion", data={"yearly_limit": "", "backend": "", "overflow": ""})
    assert answer.status_code == 303 and answer.headers["location"] == "/settings?saved=conversion"
    assert json.loads(services.sent("render-pdf", "PUT", "/quotas/demo").content) == {"yearly_limit": None}
    assert json.loads(services.sent("render-pdf", "PUT", "/backends/demo").content) == {
        "backend": None,
        "gotenberg_url": None,
    }
