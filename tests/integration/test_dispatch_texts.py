"""The e-mail's texts as a client receives them: an e-mail template's variables filled from the document's
record (and the preview telling which documents cannot be filled), and subjects that never show the
mailing's internal name (issue 16, points 3 and 4)."""

import pytest
from publipost_contracts import MailingRegrouped

from tests.integration.test_dispatch_product import completed, parsed
from tests.integration.test_dispatch_service import TENANT, flow, merge_mailing, record  # noqa: F401

pytestmark = pytest.mark.slow


async def test_an_email_template_names_record_fields_that_the_preview_checks_and_the_send_fills(flow):  # noqa: F811
    created = await flow["template_http"].post(
        "/email-templates",
        headers=TENANT,
        json={
            "name": "Amount due",
            "subject": "Invoice <NUMFACT> of <DATEFACT>",
            "body_text": "Dear {client_name},\nAmount due: {amount_due} EUR ({branch} branch) by {due_date}.\n",
        },
    )
    assert created.status_code == 201, created.text
    records = [record(n, f"client{n}@example.test") for n in range(1, 9)] + [record(9, None), record(10, None)]
    for r in records:
        r.update(date="15/11/2026", due_date="15/12/2026")
    del records[7]["due_date"]  # INV-0008's record has no due date
    mailing = await merge_mailing(flow, records)
    body = {"mailing_id": mailing.mailing_id, "email_template_id": created.json()["id"]}

    preview = (await flow["dispatch_http"].post("/dispatches/preview", headers=TENANT, json=body)).json()
    assert (preview["documents"], preview["will_send"]) == (10, 7)
    reasons = {u["document_number"]: u["reason"] for u in preview["unsendable"]}
    assert sorted(reasons) == ["INV-0008", "INV-0009", "INV-0010"]
    assert "{due_date}" in reasons["INV-0008"] and reasons["INV-0009"].startswith("no address")

    started = await flow["dispatch_http"].post("/dispatches", headers=TENANT, json=body)
    assert started.status_code == 202, started.text
    outcome = await completed(flow, started.json()["dispatch_id"])
    assert (outcome.sent, outcome.failed) == (7, 3)
    received = {m["To"]: m for m in map(parsed, flow["mailbox"].messages())}
    one = received["client1@example.test"]
    assert one["Subject"] == "Invoice INV-0001 of 15/11/2026"  # the document's date, not the day of sending
    assert "Amount due: 120 EUR (Lyon branch) by 15/12/2026." in one.get_body(("plain",)).get_content()


async def test_an_email_template_naming_what_no_record_carries_is_refused_naming_it(flow):  # noqa: F811
    refused = await flow["template_http"].post(
        "/email-templates",
        headers=TENANT,
        json={"name": "Lines", "entity_type": "invoice", "body_text": "Hello,\nyour lines: {lines}\n"},
    )
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert problem["loc"] == ["body", "body_text"] and "{lines}" in problem["msg"] and "line 2" in problem["msg"]


async def test_a_resent_not_sent_mailing_without_subject_gets_the_document_types_subject(flow):  # noqa: F811
    mailing = await merge_mailing(flow, [record(1, "one@example.test"), record(2, None)])
    first = await flow["dispatch_http"].post("/dispatches", headers=TENANT, json={"mailing_id": mailing.mailing_id})
    assert first.status_code == 202, first.text
    await completed(flow, first.json()["dispatch_id"])
    regrouped = await flow["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == first.json()["dispatch_id"])

    put = await flow["directory_http"].put("/recipients/C0002", headers=TENANT, json={"email": "fixed2@example.test"})
    assert put.status_code in (200, 201), put.text
    again = await flow["dispatch_http"].post(
        "/dispatches", headers=TENANT, json={"mailing_id": regrouped.not_sent_mailing_id, "document_type": "invoice"}
    )
    assert again.status_code == 202, again.text
    await completed(flow, again.json()["dispatch_id"])

    subjects = {m["To"]: m["Subject"] for m in map(parsed, flow["mailbox"].messages())}
    assert subjects == {"one@example.test": "Your document INV-0001", "fixed2@example.test": "Your invoice INV-0002"}
