"""`publipost send`, `resend-unsent` and `history`, against dispatch's and merge's APIs answered from a table."""

import json

import httpx
import pytest

from tests.unit.fakes.services_http import PROFILE, Terminal, json_body

DISPATCHES = f"{PROFILE.dispatch_url}/dispatches"
MAILINGS = f"{PROFILE.merge_url}/mailings"


def dispatch_view(status: str, *, queued: int = 0, sent: int = 0, failed: int = 0, reason: str | None = None) -> dict:
    return {
        "dispatch_id": "d1",
        "mailing_id": "m1",
        "status": status,
        "reason": reason,
        "errors": 0,
        "total": 4,
        "queued": queued,
        "sending": 0,
        "sent": sent,
        "failed": failed,
        "created_at": "2026-11-30T10:00:00Z",
    }


def mailing(mailing_id: str, status: str, **extra: object) -> dict:
    return {"id": mailing_id, "name": f"Notices {mailing_id}", "status": status, "documents": 2, **extra}


@pytest.fixture
def terminal(tmp_path):
    return Terminal(tmp_path, env_credential="token")


def test_a_send_is_followed_to_its_end_and_the_documents_not_sent_are_pointed_at(terminal):
    terminal.services.on("POST", DISPATCHES, httpx.Response(202, json={"dispatch_id": "d1"}))
    not_recorded_yet = httpx.Response(404, json={"detail": "no dispatch 'd1' for this tenant"})
    terminal.services.on(
        "GET",
        f"{DISPATCHES}/d1",
        not_recorded_yet,
        dispatch_view("sending", queued=3, sent=1),
        dispatch_view("completed", sent=3, failed=1),
    )

    result = terminal.run("send", "m1", "--account", "billing", "--subject", "Invoice {document_number}")

    assert result.exit_code == 0, result.output
    assert json_body(terminal.services.sent("POST", DISPATCHES)[0]) == {
        "mailing_id": "m1",
        "account_id": "billing",
        "subject": "Invoice {document_number}",
    }
    assert "dispatch d1 of mailing m1 started" in result.output
    assert "4/4" in result.output
    assert "sent 3 / not sent 1" in result.output
    assert "publipost resend-unsent m1" in result.output


def test_chosen_documents_alone_are_sent(terminal):
    terminal.services.on("POST", DISPATCHES, httpx.Response(202, json={"dispatch_id": "d1"}))

    result = terminal.run("send", "m1", "--document", "doc-1", "--document", "doc-3", "--no-wait")

    assert result.exit_code == 0, result.output
    assert json_body(terminal.services.requests[0])["document_ids"] == ["doc-1", "doc-3"]
    assert len(terminal.services.requests) == 1


def test_a_preview_says_what_would_go_and_what_would_not(terminal):
    preview = {
        "documents": 4,
        "will_send": 3,
        "without_address": 1,
        "unsendable": [{"document_id": "doc-3", "document_number": "INV-0003", "reason": "no address"}],
        "attachments_bytes": 100,
        "estimated_bytes": 180,
    }
    terminal.services.on("POST", f"{DISPATCHES}/preview", preview)

    result = terminal.run("send", "m1", "--preview")

    assert result.exit_code == 0, result.output
    assert "4 documents: 3 will be sent, 1 will not (180 bytes of e-mail)" in result.output
    assert "INV-0003 (doc-3): no address" in result.output
    assert terminal.services.sent("POST", DISPATCHES) == []


def test_a_paused_dispatch_says_why_and_the_command_fails(terminal):
    terminal.services.on("POST", DISPATCHES, httpx.Response(202, json={"dispatch_id": "d1"}))
    paused = {**dispatch_view("paused", queued=2, sent=1, failed=1, reason="421 try later"), "errors": 25}
    terminal.services.on("GET", f"{DISPATCHES}/d1", paused)

    result = terminal.run("send", "m1")

    assert result.exit_code == 1
    assert "error: dispatch d1 paused after 25 errors: 421 try later" in result.output


def test_a_dispatch_refused_up_front_is_dispatch_s_reason(terminal):
    refused = httpx.Response(409, json={"detail": "mailing 'm1' is docx only: only PDF mailings are e-mailed"})
    terminal.services.on("POST", DISPATCHES, refused)

    result = terminal.run("send", "m1")

    assert result.exit_code == 1
    assert "error: dispatch answered 409: mailing 'm1' is docx only: only PDF mailings are e-mailed" in result.output


def test_resend_unsent_finds_the_latest_not_sent_mailing_and_sends_it(terminal):
    # m1 was sent: regrouped into m1-sent and m1-unsent; m1-unsent was re-sent once: regrouped again.
    terminal.services.on("GET", f"{MAILINGS}/m1", mailing("m1", "replaced", replaced_by=["m1-sent", "m1-unsent"]))
    terminal.services.on("GET", f"{MAILINGS}/m1-sent", mailing("m1-sent", "ready", regrouped_from={"outcome": "sent"}))
    terminal.services.on(
        "GET",
        f"{MAILINGS}/m1-unsent",
        mailing("m1-unsent", "replaced", regrouped_from={"outcome": "not_sent"}, replaced_by=["m1-unsent-2"]),
    )
    terminal.services.on(
        "GET", f"{MAILINGS}/m1-unsent-2", mailing("m1-unsent-2", "ready", regrouped_from={"outcome": "not_sent"})
    )
    terminal.services.on("POST", DISPATCHES, httpx.Response(202, json={"dispatch_id": "d2"}))

    result = terminal.run("resend-unsent", "m1", "--no-wait")

    assert result.exit_code == 0, result.output
    assert "Notices m1-unsent-2 (m1-unsent-2): 2 documents to send again" in result.output
    assert json_body(terminal.services.sent("POST", DISPATCHES)[0]) == {"mailing_id": "m1-unsent-2"}


def test_resend_unsent_of_a_mailing_sent_whole_or_never_sent_says_so(terminal):
    terminal.services.on("GET", f"{MAILINGS}/all-sent", mailing("all-sent", "replaced", replaced_by=["s"]))
    terminal.services.on("GET", f"{MAILINGS}/s", mailing("s", "ready", regrouped_from={"outcome": "sent"}))
    terminal.services.on("GET", f"{MAILINGS}/fresh", mailing("fresh", "ready"))

    whole = terminal.run("resend-unsent", "all-sent")
    fresh = terminal.run("resend-unsent", "fresh")

    assert whole.exit_code == fresh.exit_code == 1
    assert "error: every document of mailing all-sent was sent: nothing to re-send" in whole.output
    assert "mailing fresh (ready) has not been regrouped after a dispatch: send it with `publipost send fresh`" in (
        fresh.output.replace("\n", " ")
    )
    assert terminal.services.sent("POST", DISPATCHES) == []


def test_the_history_is_filtered_as_asked_and_shown_a_send_a_line(terminal):
    page = {
        "items": [
            {
                "send_id": "s1",
                "kind": "dispatch",
                "dispatch_id": "d1",
                "status": "failed",
                "to": ["two@reject.test"],
                "cc": [],
                "bcc": [],
                "subject": "Invoice INV-0002",
                "at": "2026-11-30T10:00:05.123Z",
                "document": {"document_id": "doc-2", "document_number": "INV-0002", "name": "", "mailing_id": "m1"},
                "document_type": "invoice",
                "error": "550 mailbox unavailable",
                "message_id": None,
                "smtp_reply": None,
                "attempts": 1,
            }
        ],
        "page": 2,
        "per_page": 50,
        "has_next": True,
    }
    terminal.services.on("GET", f"{PROFILE.dispatch_url}/history", page)

    result = terminal.run("history", "--type", "invoice", "--status", "failed", "--text", "INV-0002", "--page", "2")

    assert result.exit_code == 0, result.output
    assert dict(terminal.services.requests[0].url.params) == {
        "document_type": "invoice",
        "status": "failed",
        "q": "INV-0002",
        "page": "2",
    }
    assert "2026-11-30 10:00:05  failed  INV-0002  two@reject.test  Invoice INV-0002  550 mailbox unavailable" in (
        result.output
    )
    assert "page 2, 1 sends; --page 3 for more" in result.output
    assert json.loads(terminal.run("history", "--json").output) == page
