"""Dispatch as a person uses it, against the real pieces: accounts, outcomes per SMTP answer, copies,
header injection, the error threshold, the re-send of the not-sent mailing, the history."""

import asyncio
import email
import email.policy
import re
import uuid

import httpx
import pytest
from publipost_contracts import DispatchCompleted, DispatchPaused, DocumentSent, MailingRegrouped
from publipost_localstack.processes import free_port
from publipost_localstack.smtp_capture import start_capture
from pymongo import AsyncMongoClient

from tests.credentials import credentials
from tests.integration.test_dispatch_service import TENANT, dispatch, flow, merge_mailing, messages, record  # noqa: F401
from tests.support import sample_record, wait_until

pytestmark = pytest.mark.slow


def account(port: int, **changes: object) -> dict[str, object]:
    return {
        "name": "Billing",
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "login": None,
        "from_address": "billing@acme.test",
        "from_name": "Acme Billing",
        "reply_to": "replies@acme.test",
        "limits": {"connections": 2, "rate_per_s": 50, "daily_cap": 1000},
        **changes,
    }


async def completed(flow, dispatch_id: str) -> DispatchCompleted:  # noqa: F811
    return await flow["tap"].next(DispatchCompleted, lambda e: e.dispatch_id == dispatch_id, timeout=60)


async def deliveries(flow, dispatch_id: str) -> list[dict]:  # noqa: F811
    url = f"/dispatches/{dispatch_id}/deliveries"
    return (await flow["dispatch_http"].get(url, headers=TENANT)).json()["items"]


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


async def test_an_account_keeps_its_password_sealed_and_never_shows_it(flow, infra, namespace):  # noqa: F811
    http = flow["dispatch_http"]
    created = await http.post("/accounts", headers=TENANT, json=account(flow["mailbox"].port, password="s3cret-pw"))
    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["password_set"] is True and "password" not in shown and "s3cret" not in created.text
    listed = await http.get("/accounts", headers=TENANT)
    assert "s3cret" not in listed.text and listed.json()[0]["id"] == shown["id"]

    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_url)
    stored = await client[f"{namespace}_dispatch"]["accounts"].find_one({"_id": shown["id"]})
    await client.close()
    assert "s3cret" not in str(stored) and stored["password_sealed"].startswith("f1.")  # Fernet

    # Updating without a password keeps the stored one.
    updated = await http.put(f"/accounts/{shown['id']}", headers=TENANT, json=account(flow["mailbox"].port))
    assert updated.json()["password_set"] is True and updated.json()["version"] == 2

    refused = await http.post("/accounts", headers=TENANT, json=account(25, host="smtp.example.test"))
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "tls"]
    assert "only for a server on this machine" in refused.json()["detail"][0]["msg"]


@pytest.mark.dispatch_settings(account_test_s=1.0)  # every test answers after this long
async def test_connection_test_and_tls_required(flow, tmp_path):  # noqa: F811
    port = free_port()
    tls_server = start_capture(tmp_path / "tls-mail", port=port, require_starttls=True)
    try:
        http = flow["dispatch_http"]
        plain = (await http.post("/accounts", headers=TENANT, json=account(port))).json()
        upgraded = (
            await http.post(
                "/accounts", headers=TENANT, json=account(port, tls="starttls", verify_certificate=False)
            )
        ).json()
        assert (await http.post(f"/accounts/{upgraded['id']}/test", headers=TENANT)).json()["ok"] is True
        down = (await http.post("/accounts", headers=TENANT, json=account(free_port()))).json()
        test = (await http.post(f"/accounts/{down['id']}/test", headers=TENANT)).json()
        assert test["ok"] is False and test["error"].startswith("no SMTP server at 127.0.0.1:")

        mailing = await merge_mailing(flow, [record(1, "one@example.test"), record(2, "two@example.test")])
        refused = await dispatch(flow, mailing.mailing_id, account_id=plain["id"])
        outcome = await completed(flow, refused.dispatch_id)
        assert (outcome.sent, outcome.failed) == (0, 2)
        assert all(f.reason.startswith("530") and "STARTTLS" in f.reason for f in outcome.failures)
        assert [d["attempts"] for d in await deliveries(flow, refused.dispatch_id)] == [1, 1]  # 5xx: failed at once
    finally:
        tls_server.stop()


async def test_each_smtp_answer_gives_its_outcome(flow):  # noqa: F811
    http = flow["dispatch_http"]
    closed_port = free_port()
    dead = (await http.post("/accounts", headers=TENANT, json=account(closed_port))).json()
    records = [record(1, "one@example.test"), record(2, "later@tempfail.test"), record(3, "gone@reject.test")]
    mailing = await merge_mailing(flow, records)
    request = await dispatch(flow, mailing.mailing_id, account_id=None)
    outcome = await completed(flow, request.dispatch_id)
    assert (outcome.sent, outcome.failed) == (2, 1)
    by_number = {d["document_number"]: d for d in await deliveries(flow, request.dispatch_id)}
    assert by_number["INV-0001"]["state"] == "sent" and by_number["INV-0001"]["smtp_reply"].startswith("250")
    assert by_number["INV-0001"]["message_id"].startswith("<") and by_number["INV-0001"]["attempts"] == 1
    assert (by_number["INV-0002"]["state"], by_number["INV-0002"]["attempts"]) == ("sent", 2)  # 451, then 250
    assert (by_number["INV-0003"]["state"], by_number["INV-0003"]["attempts"]) == ("failed", 1)
    assert by_number["INV-0003"]["reason"].startswith("550")
    sent_ids = {m["Message-ID"] for m in map(parsed, flow["mailbox"].messages())}
    assert by_number["INV-0001"]["message_id"] in sent_ids
    announced = [e for e in flow["tap"].of(DocumentSent) if e.dispatch_id == request.dispatch_id]
    assert sorted(e.document_number for e in announced) == ["INV-0001", "INV-0002"]

    # Connection refused: tried again with backoff up to the limit, then failed.
    other = await merge_mailing(flow, [record(4, "four@example.test")])
    unreachable = await dispatch(flow, other.mailing_id, account_id=dead["id"])
    outcome = await completed(flow, unreachable.dispatch_id)
    assert outcome.failed == 1 and "cannot connect" in outcome.failures[0].reason
    assert (await deliveries(flow, unreachable.dispatch_id))[0]["attempts"] == 4


async def test_copies_shared_in_bcc_or_sent_separately_and_copy_to_sender(flow):  # noqa: F811
    http = flow["dispatch_http"]
    billing = (await http.post("/accounts", headers=TENANT, json=account(flow["mailbox"].port))).json()
    mailing = await merge_mailing(flow, [record(1, "one@example.test")])
    shared = await dispatch(
        flow, mailing.mailing_id, account_id=billing["id"], cc=["cc@example.test"], bcc=["hidden@example.test"],
        copy_to_sender=True,
    )
    await completed(flow, shared.dispatch_id)
    [message] = map(parsed, flow["mailbox"].messages())
    assert message["To"] == "one@example.test" and message["Cc"] == "cc@example.test" and "Bcc" not in message
    assert message["From"] == "Acme Billing <billing@acme.test>" and message["Reply-To"] == "replies@acme.test"
    assert message["X-Capture-Envelope-To"] == (
        "one@example.test, cc@example.test, hidden@example.test, billing@acme.test"
    )
    assert next(message.iter_attachments()).get_filename() == "INV-0001.pdf"

    again = await merge_mailing(flow, [record(2, "two@example.test")])
    separate = await dispatch(
        flow, again.mailing_id, account_id=billing["id"], cc=["cc@example.test"], bcc=["hidden@example.test"],
        copy_to_sender=True, separate_sends=True,
    )
    await completed(flow, separate.dispatch_id)
    mails = [m for m in map(parsed, flow["mailbox"].messages()) if m["Subject"].startswith("Invoice INV-0002")]
    assert sorted((m["To"], m["X-Capture-Envelope-To"]) for m in mails) == [
        ("billing@acme.test", "billing@acme.test"),
        ("cc@example.test", "cc@example.test"),
        ("hidden@example.test", "hidden@example.test"),
        ("two@example.test", "two@example.test"),
    ]
    assert all("Cc" not in m and next(m.iter_attachments()).get_content().startswith(b"%PDF") for m in mails)
    assert len({m["Message-ID"] for m in mails}) == 4


async def test_header_injection_is_refused_for_that_document_only(flow):  # noqa: F811
    evil = sample_record(2, email="two@example.test", name="Evil\r\nBcc: victim@example.test")
    mailing = await merge_mailing(flow, [record(1, "one@example.test"), evil])
    request = await dispatch(flow, mailing.mailing_id)
    outcome = await completed(flow, request.dispatch_id)
    assert (outcome.sent, outcome.failed) == (1, 1)
    assert "header injection refused" in outcome.failures[0].reason and "subject" in outcome.failures[0].reason
    assert all("victim" not in m.get("X-Capture-Envelope-To", "") for m in map(parsed, flow["mailbox"].messages()))


async def test_too_many_errors_pause_the_dispatch_until_a_person_resumes_it(flow):  # noqa: F811
    http = flow["dispatch_http"]
    down = (await http.post("/accounts", headers=TENANT, json=account(free_port(), pause_after_errors=2))).json()
    records = [record(n, f"client{n}@example.test") for n in range(1, 4)]
    mailing = await merge_mailing(flow, records)
    request = await dispatch(flow, mailing.mailing_id, account_id=down["id"])

    paused = await flow["tap"].next(DispatchPaused, lambda e: e.dispatch_id == request.dispatch_id, timeout=60)
    # Sends run side by side: the count read when the threshold is crossed may include a later error.
    errors = re.match(r"paused after (\d+) SMTP errors; last: cannot connect", paused.reason)
    assert errors and int(errors.group(1)) >= 2, paused.reason
    view = (await http.get(f"/dispatches/{request.dispatch_id}", headers=TENANT)).json()
    assert view["status"] == "paused" and view["reason"] == paused.reason

    # The server address is fixed; the dispatch goes on with what was pending.
    fixed = account(flow["mailbox"].port, pause_after_errors=2)
    assert (await http.put(f"/accounts/{down['id']}", headers=TENANT, json=fixed)).status_code == 200
    resumed = await http.post(f"/dispatches/{request.dispatch_id}/resume", headers=TENANT)
    assert resumed.status_code == 200 and resumed.json()["status"] == "sending"
    outcome = await completed(flow, request.dispatch_id)
    assert (outcome.sent, outcome.failed) == (3, 0)
    assert (await http.post(f"/dispatches/{request.dispatch_id}/resume", headers=TENANT)).status_code == 409


async def test_the_pause_stops_the_sends_already_claimed_and_says_what_is_left(flow):  # noqa: F811
    """Issue 16, point 2: at 1 e-mail/s the sends of a dispatch wait for their permit, claimed; once two
    refusals pause it, none of them goes, each is given back to the queue, and resuming sends those. Five
    documents of nine are refused, so whatever order the sends take, some are left at the first pause."""
    http = flow["dispatch_http"]
    slow = account(flow["mailbox"].port, pause_after_errors=2, limits={"connections": 1, "rate_per_s": 1, "daily_cap": 1000})
    slow_id = (await http.post("/accounts", headers=TENANT, json=slow)).json()["id"]
    refused = [record(n, f"gone{n}@reject.test") for n in range(1, 6)]
    records = refused + [record(n, f"client{n}@example.test") for n in range(6, 10)]
    mailing = await merge_mailing(flow, records)
    request = await dispatch(flow, mailing.mailing_id, account_id=slow_id)
    url = f"/dispatches/{request.dispatch_id}"

    paused = await flow["tap"].next(DispatchPaused, lambda e: e.dispatch_id == request.dispatch_id, timeout=60)
    at_pause = len(flow["mailbox"].messages())
    await asyncio.sleep(4)  # at 1 e-mail/s, sends waiting for their permit at the pause would have gone
    assert len(flow["mailbox"].messages()) == at_pause, "e-mails went out after the pause"
    view = (await http.get(url, headers=TENANT)).json()
    assert (view["status"], view["sending"], view["failed"]) == ("paused", 0, 2), view
    assert view["sent"] == at_pause and view["queued"] == 9 - 2 - at_pause >= 3, view
    assert paused.queued == view["queued"]
    left = [d for d in await deliveries(flow, request.dispatch_id) if d["state"] == "queued"]
    assert {d["attempts"] for d in left} == {0}  # given back, not tried

    async def settled():  # paused again by the refusals left, or completed
        shown = (await http.get(url, headers=TENANT)).json()
        return shown if shown["status"] != "sending" and shown["sending"] == 0 else None

    while view["status"] == "paused":
        resumed = await http.post(f"{url}/resume", headers=TENANT)
        assert resumed.status_code == 200, resumed.text
        view = await wait_until(settled, timeout=60)
    outcome = await completed(flow, request.dispatch_id)
    assert (outcome.sent, outcome.failed) == (4, 5)
    assert len(flow["mailbox"].messages()) == 4
    regrouped = await flow["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == request.dispatch_id)
    assert (regrouped.sent, regrouped.not_sent) == (4, 5)


async def test_a_pause_with_nothing_left_to_send_completes_the_dispatch(flow):  # noqa: F811
    http = flow["dispatch_http"]
    strict = account(flow["mailbox"].port, pause_after_errors=2)
    strict_id = (await http.post("/accounts", headers=TENANT, json=strict)).json()["id"]
    mailing = await merge_mailing(flow, [record(1, "gone1@reject.test"), record(2, "gone2@reject.test")])
    request = await dispatch(flow, mailing.mailing_id, account_id=strict_id)

    outcome = await completed(flow, request.dispatch_id)
    assert (outcome.sent, outcome.failed) == (0, 2)
    regrouped = await flow["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == request.dispatch_id)
    assert (regrouped.sent, regrouped.not_sent) == (0, 2)
    view = (await http.get(f"/dispatches/{request.dispatch_id}", headers=TENANT)).json()
    assert (view["status"], view["queued"]) == ("completed", 0)


async def test_the_daily_cap_of_an_account_pauses_the_dispatch_and_says_so(flow):  # noqa: F811
    http = flow["dispatch_http"]
    capped = account(flow["mailbox"].port, limits={"connections": 1, "rate_per_s": 5, "daily_cap": 1})
    capped_id = (await http.post("/accounts", headers=TENANT, json=capped)).json()["id"]
    mailing = await merge_mailing(flow, [record(1, "one@example.test"), record(2, "two@example.test")])
    request = await dispatch(flow, mailing.mailing_id, account_id=capped_id)

    paused = await flow["tap"].next(DispatchPaused, lambda e: e.dispatch_id == request.dispatch_id, timeout=60)
    assert f"account {capped_id!r} reached its daily cap of 1 e-mails" in paused.reason

    async def one_sent_one_waiting():  # the other send may still be finishing when the pause is announced
        view = (await http.get(f"/dispatches/{request.dispatch_id}", headers=TENANT)).json()
        return (view["status"], view["sent"], view["queued"]) == ("paused", 1, 1)

    await wait_until(one_sent_one_waiting)
    assert len(flow["mailbox"].messages()) == 1


async def test_the_not_sent_mailing_is_resent_once_addresses_are_fixed(flow):  # noqa: F811
    records = [record(1, "one@example.test"), record(2, None), record(3, None)]
    mailing = await merge_mailing(flow, records)
    preview = await flow["dispatch_http"].post(
        "/dispatches/preview", headers=TENANT, json={"mailing_id": mailing.mailing_id}
    )
    assert (preview.json()["documents"], preview.json()["will_send"], preview.json()["without_address"]) == (3, 1, 2)
    assert [u["document_number"] for u in preview.json()["unsendable"]] == ["INV-0002", "INV-0003"]
    assert preview.json()["attachments_bytes"] > 0 and flow["mailbox"].messages() == []

    first = await dispatch(flow, mailing.mailing_id)
    await completed(flow, first.dispatch_id)
    regrouped = await flow["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == first.dispatch_id)
    assert (regrouped.sent, regrouped.not_sent) == (1, 2)

    for n in (2, 3):  # the addresses are fixed in the recipient directory
        put = await flow["directory_http"].put(
            f"/recipients/C{n:04d}", headers=TENANT, json={"email": f"fixed{n}@example.test"}
        )
        assert put.status_code in (200, 201), put.text
    again = await flow["dispatch_http"].post(
        "/dispatches", headers=TENANT, json={"mailing_id": regrouped.not_sent_mailing_id, "subject": "Again {document_number}"}
    )
    assert again.status_code == 202, again.text
    second = again.json()["dispatch_id"]
    outcome = await completed(flow, second)
    assert (outcome.sent, outcome.failed) == (2, 0)
    resent = [m for m in map(parsed, flow["mailbox"].messages()) if m["Subject"].startswith("Again")]
    assert sorted(m["To"] for m in resent) == ["fixed2@example.test", "fixed3@example.test"]
    regrouped_again = await flow["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == second)
    assert (regrouped_again.sent, regrouped_again.not_sent) == (2, 0)
    # The re-sent documents join the first send's "(sent by e-mail)" mailing rather than making another.
    assert regrouped_again.sent_mailing_id == regrouped.sent_mailing_id
    sent = await flow["merge_http"].get(f"/mailings/{regrouped_again.sent_mailing_id}", headers=TENANT)
    assert sent.json()["name"] == "Notices (sent by e-mail)" and sent.json()["documents"] == 3

    # The history of one document shows both of its sends, newest first.
    document_id = next(d["document_id"] for d in await deliveries(flow, second) if d["document_number"] == "INV-0002")
    sends = (await flow["dispatch_http"].get(f"/history/documents/{document_id}", headers=TENANT)).json()
    assert [(s["status"], s["to"]) for s in sends] == [("sent", ["fixed2@example.test"]), ("failed", [])]
    assert sends[1]["error"].startswith("no address")


async def test_subject_bodies_and_signature_come_from_an_email_template(flow):  # noqa: F811
    async with httpx.AsyncClient(base_url=flow["template_url"]) as http:
        created = await http.post(
            "/email-templates",
            headers=TENANT,
            json={
                "name": "Invoice mail",
                "subject": "Facture <NUMFACT> - {client_name}",
                "body_text": "Bonjour {client_name},\nvotre facture {document_number} est jointe.",
                "body_html": "<p>Bonjour <b>{client_name}</b></p>",
                "signature": "Service facturation",
            },
        )
    assert created.status_code == 201, created.text
    mailing = await merge_mailing(flow, [record(1, "one@example.test")])
    request = await dispatch(flow, mailing.mailing_id, email_template_id=created.json()["id"])
    await completed(flow, request.dispatch_id)
    [message] = map(parsed, flow["mailbox"].messages())
    assert message["Subject"] == "Facture INV-0001 - Client Number1"
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Bonjour Client Number1,\nvotre facture INV-0001 est jointe.")
    assert text.endswith("-- \nService facturation\n")
    assert "<b>Client Number1</b>" in message.get_body(("html",)).get_content()

    regrouped = await flow["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == request.dispatch_id)
    unknown = await flow["dispatch_http"].post(
        "/dispatches", headers=TENANT, json={"mailing_id": regrouped.sent_mailing_id, "email_template_id": "nope"}
    )
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("email_template_id: no e-mail template")


async def test_a_docx_only_mailing_is_refused_up_front_over_http(flow):  # noqa: F811
    mailing = await merge_mailing(flow, [record(1, "one@example.test")], output="docx")
    response = await flow["dispatch_http"].post("/dispatches", headers=TENANT, json={"mailing_id": mailing.mailing_id})
    assert response.status_code == 409 and "only PDF mailings can be e-mailed" in response.json()["detail"]


async def test_an_immediate_send_is_recorded_in_the_history_with_the_campaign_sends(flow):  # noqa: F811
    mailing = await merge_mailing(flow, [record(1, "one@example.test"), record(2, "two@example.test")])
    campaign = await dispatch(flow, mailing.mailing_id, document_type="invoice")
    await completed(flow, campaign.dispatch_id)
    documents = await deliveries(flow, campaign.dispatch_id)
    # After the campaign, the documents belong to "Notices (sent by e-mail)".
    regrouped = await flow["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == campaign.dispatch_id)
    http = flow["dispatch_http"]
    sent = await http.post(
        "/sends",
        headers=TENANT,
        json={
            "mailing_id": regrouped.sent_mailing_id,
            "document_id": documents[0]["document_id"],
            "to": ["manager@example.test"],
            "cc": ["deputy@example.test"],
            "subject": "Copy of {document_number}",
            "body": "As asked.",
            "copy_to_sender": True,
            "document_type": "invoice",
        },
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["state"] in ("queued", "sending")
    send_url = sent.headers["Location"]

    async def final():
        shown = (await http.get(send_url, headers=TENANT)).json()
        return shown if shown["state"] not in ("queued", "sending") else None

    done = await wait_until(final)
    assert done["state"] == "sent" and done["smtp_reply"].startswith("250")
    assert (await http.get(send_url, headers=credentials("other"))).status_code == 404
    manual = next(m for m in map(parsed, flow["mailbox"].messages()) if m["Subject"] == "Copy of INV-0001")
    assert manual["Cc"] == "deputy@example.test" and "no-reply@publipost.test" in manual["X-Capture-Envelope-To"]

    page = (await http.get("/history", headers=TENANT, params={"document_type": "invoice"})).json()
    assert (page["items"][0]["kind"], page["items"][0]["subject"]) == ("manual", "Copy of INV-0001")
    assert len(page["items"]) == 3 and page["per_page"] == 50 and page["has_next"] is False
    found = (await http.get("/history", headers=TENANT, params={"q": "inv-0002", "status": "sent"})).json()["items"]
    assert [e["document"]["document_number"] for e in found] == ["INV-0002"]
    assert found[0]["to"] == ["two@example.test"] and found[0]["document"]["name"] == "INV-0002.pdf"
    assert (await http.get("/history", headers=TENANT, params={"status": "failed"})).json()["items"] == []
    header = await http.post(
        "/sends",
        headers=TENANT,
        json={"mailing_id": regrouped.sent_mailing_id, "document_id": documents[0]["document_id"],
              "to": ["a@example.test\r\nBcc: victim@example.test"]},
    )
    assert header.status_code == 422 and "header injection refused" in header.text
    assert uuid.UUID(sent.json()["send_id"].removeprefix("manual-"))
