"""Whoever started a dispatch is told by e-mail when it ends or pauses (issue 16, point 10): the notice's
words, and its sending through dispatch's composition root with its SMTP server in memory."""

import email
import email.policy

from publipost_contracts import DispatchCompleted, DispatchPaused, Failure, Requester
from publipost_dispatch.notifications import completion_notice, pause_notice

from tests.unit.fakes.smtp import FakeSmtpServer
from tests.unit.test_dispatch_handlers import KEY, dispatch_service, send

JANE = Requester(subject="user:jane", roles=["operator"], email="jane@acme.example")


def test_a_completion_notice_counts_and_names_the_first_failures():
    failures = [Failure(document_id=f"doc-{n}", reason="550 5.1.1 mailbox unknown") for n in range(12)]
    event = DispatchCompleted(
        tenant_id="acme", correlation_id="c1", dispatch_id="d1", mailing_id="m1",
        sent=88, failed=12, failures=failures, uncertain=1,
    )  # fmt: skip
    notice = completion_notice(event, "November invoices", [f"INV-{n}: {f.reason}" for n, f in enumerate(failures[:10])])
    assert notice.subject == "Sending of \u201cNovember invoices\u201d complete: 88 sent, 12 not sent"
    assert "Not sent: 12 (1 unconfirmed)" in notice.body
    assert notice.body.count("550 5.1.1") == 10 and "- INV-9: 550" in notice.body and "and 2 more" in notice.body
    assert "\u201cnot sent by e-mail\u201d batch" in notice.body


def test_a_pause_notice_says_why_what_waits_and_how_to_resume():
    event = DispatchPaused(
        tenant_id="acme", correlation_id="c1", dispatch_id="d1", mailing_id="m1",
        reason="the account's daily cap (1000) is reached", errors=0, sent=1000, failed=0, queued=250,
    )  # fmt: skip
    notice = pause_notice(event, "November invoices")
    assert notice.subject == "Sending of \u201cNovember invoices\u201d paused: the account's daily cap (1000) is reached"
    assert "Waiting: 250" in notice.body and "POST /dispatches/d1/resume" in notice.body


async def test_the_requester_gets_the_notice_once_the_last_send_completes_the_dispatch():
    server = FakeSmtpServer()
    async with await dispatch_service(2, server) as dispatch:
        stored = await dispatch.ctx.dispatches.get(KEY)
        stored.request = {"requested_by": JANE.model_dump(mode="json")}
        await dispatch.ctx.dispatches.save(stored, "request")
        for n in range(2):
            await dispatch.deliver(send(n))
        await dispatch.ctx.completions.wait()

        (completed,) = dispatch.published(DispatchCompleted)
        assert completed.requested_by == JANE
        await dispatch.deliver(completed)  # announced again: told once
        notices = [message for recipients, message in server.received if recipients == ["jane@acme.example"]]
        [notice] = [email.message_from_bytes(raw, policy=email.policy.default) for raw in notices]
        assert notice["Subject"] == "Sending of \u201cNotices\u201d complete: 2 sent, 0 not sent"
        assert notice["From"] == "Publipost <no-reply@publipost.test>"  # the platform's server speaks
        assert not notice.is_multipart() and notice.get_content_type() == "text/plain"


async def test_the_requester_is_told_once_when_the_dispatch_pauses():
    server = FakeSmtpServer(refuse_with=(550, "5.1.1 mailbox unknown"), takes_anyway=("jane@acme.example",))
    async with await dispatch_service(4, server, pause_after_errors=2) as dispatch:
        stored = await dispatch.ctx.dispatches.get(KEY)
        stored.request = {"requested_by": JANE.model_dump(mode="json")}
        await dispatch.ctx.dispatches.save(stored, "request")
        for n in range(4):
            await dispatch.deliver(send(n))

        (paused,) = dispatch.published(DispatchPaused)
        assert paused.requested_by == JANE
        [(recipients, raw)] = server.received
        notice = email.message_from_bytes(raw, policy=email.policy.default)
        assert recipients == ["jane@acme.example"]
        assert notice["Subject"].startswith("Sending of \u201cNotices\u201d paused: paused after 2 SMTP errors")
        assert "Waiting: 2" in notice.get_content()
