"""Where a document goes, as a person sees it: the directory's corrected address wins on the re-send of the
documents whose address was refused, a send names its correspondence type and reaches the contact for it,
and a client who wants a document type as DOCX gets the DOCX."""

import pytest
from publipost_contracts import MailingRegrouped

from tests.integration.test_dispatch_product import completed, deliveries, parsed
from tests.integration.test_dispatch_service import TENANT, flow, merge_mailing, record  # noqa: F401

pytestmark = pytest.mark.slow


async def start(flow, **body: object) -> str:  # noqa: F811
    response = await flow["dispatch_http"].post("/dispatches", headers=TENANT, json=body)
    assert response.status_code == 202, response.text
    return response.json()["dispatch_id"]


async def put_recipient(flow, customer_number: str, **body: object) -> None:  # noqa: F811
    put = await flow["directory_http"].put(f"/recipients/{customer_number}", headers=TENANT, json=body)
    assert put.status_code in (200, 201), put.text


async def test_a_refused_address_corrected_in_the_directory_wins_on_the_resend(flow):  # noqa: F811
    mailing = await merge_mailing(flow, [record(1, "old@reject.test"), record(2, "two@example.test")])
    first = await start(flow, mailing_id=mailing.mailing_id, subject="First {document_number}")
    assert (await completed(flow, first)).failed == 1
    regrouped = await flow["tap"].next(MailingRegrouped, lambda e: e.dispatch_id == first)
    assert regrouped.not_sent == 1

    await put_recipient(flow, "C0001", email="new@example.test")
    again = await start(flow, mailing_id=regrouped.not_sent_mailing_id, subject="Again {document_number}")
    outcome = await completed(flow, again)
    assert (outcome.sent, outcome.failed) == (1, 0), outcome.failures
    resent = [m for m in map(parsed, flow["mailbox"].messages()) if m["Subject"].startswith("Again")]
    assert [m["To"] for m in resent] == ["new@example.test"]
    [delivery] = await deliveries(flow, again)
    assert (delivery["to"], delivery["address_rule"]) == (["new@example.test"], "directory")
    history = (await flow["dispatch_http"].get(f"/history/documents/{delivery['document_id']}", headers=TENANT)).json()
    assert [(s["status"], s["address_rule"]) for s in history] == [("sent", "directory"), ("failed", "record")]


async def test_a_send_naming_its_correspondence_type_goes_to_the_contact_for_it(flow):  # noqa: F811
    await put_recipient(
        flow,
        "C0001",
        email="client1@example.test",
        contacts=[{"name": "Accounts", "email": "accounts@example.test", "correspondence_types": ["billing"]}],
    )
    mailing = await merge_mailing(flow, [record(1, "client1@example.test")])
    dispatch_id = await start(flow, mailing_id=mailing.mailing_id, correspondence_type="billing")
    assert (await completed(flow, dispatch_id)).sent == 1
    [message] = map(parsed, flow["mailbox"].messages())
    assert message["To"] == "accounts@example.test"
    [delivery] = await deliveries(flow, dispatch_id)
    assert delivery["address_rule"] == "contact"


async def test_a_client_preferring_docx_for_invoices_gets_the_docx(flow):  # noqa: F811
    await put_recipient(flow, "C0001", email="client1@example.test", document_type="invoice", format="docx")
    mailing = await merge_mailing(flow, [record(1, "client1@example.test"), record(2, "client2@example.test")])
    dispatch_id = await start(flow, mailing_id=mailing.mailing_id, document_type="invoice")
    assert (await completed(flow, dispatch_id)).sent == 2
    attached = {
        m["To"]: [(a.get_filename(), a.get_content_type()) for a in m.iter_attachments()]
        for m in map(parsed, flow["mailbox"].messages())
    }
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert attached == {
        "client1@example.test": [("INV-0001.docx", docx)],
        "client2@example.test": [("INV-0002.pdf", "application/pdf")],
    }
    history = (await flow["dispatch_http"].get("/history", headers=TENANT)).json()["items"]
    assert sorted(entry["document"]["name"] for entry in history) == ["INV-0001.docx", "INV-0002.pdf"]
