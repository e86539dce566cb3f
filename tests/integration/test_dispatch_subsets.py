"""Sending some documents of a mailing, and telling whoever started a send (issue 16, point 10), as a person
does it over HTTP against the real pieces: the mailing stays whole, each document shows its e-mail state,
the failed address corrected in the directory wins on the next send of that document, and the person
gets an e-mail when the dispatch ends."""

import pytest
from publipost_contracts import DispatchCompleted

from tests.credentials import credentials
from tests.integration.test_dispatch_addresses import put_recipient
from tests.integration.test_dispatch_product import parsed
from tests.integration.test_dispatch_service import TENANT, flow, merge_mailing, record  # noqa: F401
from tests.support import wait_until

pytestmark = pytest.mark.slow

JANE = credentials("acme", subject="user:jane", email="jane@acme.test")


async def start(flow, headers=TENANT, **body: object) -> str:  # noqa: F811
    response = await flow["dispatch_http"].post("/dispatches", headers=headers, json=body)
    assert response.status_code == 202, response.text
    return response.json()["dispatch_id"]


async def ended(flow, dispatch_id: str) -> DispatchCompleted:  # noqa: F811
    return await flow["tap"].next(DispatchCompleted, lambda e: e.dispatch_id == dispatch_id, timeout=60)


async def documents(flow, mailing_id: str, **params: str) -> dict[str, dict]:  # noqa: F811
    listed = await flow["merge_http"].get(f"/mailings/{mailing_id}/documents", params=params, headers=TENANT)
    assert listed.status_code == 200, listed.text
    return {d["document_number"]: d for d in listed.json()["items"]}


def sent_to(flow, subject_start: str) -> list[str]:  # noqa: F811
    return sorted(m["To"] for m in map(parsed, flow["mailbox"].messages()) if m["Subject"].startswith(subject_start))


async def test_some_documents_go_the_mailing_stays_whole_and_the_rest_go_later(flow):  # noqa: F811
    records = [record(1, "one@example.test"), record(2, "two@reject.test"), record(3, "three@example.test")]
    mailing = await merge_mailing(flow, records)
    ids = {number: d["id"] for number, d in (await documents(flow, mailing.mailing_id)).items()}

    first = await start(
        flow,
        mailing_id=mailing.mailing_id,
        subject="First {document_number}",
        document_ids=[ids["INV-0001"], ids["INV-0002"]],
    )
    outcome = await ended(flow, first)
    assert (outcome.sent, outcome.failed, outcome.regroup) == (1, 1, False)
    assert sent_to(flow, "First") == ["one@example.test"]

    # The mailing is still ready, every document in it, each showing where it stands.
    shown = (await flow["merge_http"].get(f"/mailings/{mailing.mailing_id}", headers=TENANT)).json()
    assert (shown["status"], shown["documents"]) == ("ready", 3)

    async def states() -> dict[str, str]:
        return {number: d["email_state"] for number, d in (await documents(flow, mailing.mailing_id)).items()}

    expected = {"INV-0001": "sent", "INV-0002": "not_sent", "INV-0003": "never_sent"}
    assert await wait_for(states, expected) == expected
    not_sent = await documents(flow, mailing.mailing_id, email_state="not_sent")
    assert list(not_sent) == ["INV-0002"] and not_sent["INV-0002"]["email_error"].startswith("550")

    # The client's address is corrected in the directory: the next send of that document goes there.
    await put_recipient(flow, "C0002", email="two@example.test")
    again = await start(
        flow, mailing_id=mailing.mailing_id, subject="Again {document_number}", document_ids=[ids["INV-0002"]]
    )
    assert ((o := await ended(flow, again)).sent, o.failed) == (1, 0)
    assert sent_to(flow, "Again") == ["two@example.test"]

    rest = await start(
        flow, mailing_id=mailing.mailing_id, subject="Rest {document_number}", document_ids=[ids["INV-0003"]]
    )
    assert (await ended(flow, rest)).sent == 1
    assert sent_to(flow, "Rest") == ["three@example.test"]
    assert await wait_for(states, dict.fromkeys(expected, "sent")) == dict.fromkeys(expected, "sent")
    assert len(flow["mailbox"].messages()) == 3  # credentials naming no address: no notice


async def test_a_document_not_in_the_mailing_is_refused_by_name(flow):  # noqa: F811
    mailing = await merge_mailing(flow, [record(1, "one@example.test")])
    body = {"mailing_id": mailing.mailing_id, "document_ids": ["no-such-document"]}
    refused = await flow["dispatch_http"].post("/dispatches", headers=TENANT, json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == f"document_ids: 'no-such-document' not in mailing {mailing.mailing_id!r}"
    previewed = await flow["dispatch_http"].post("/dispatches/preview", headers=TENANT, json=body)
    assert previewed.status_code == 422, previewed.text
    assert flow["mailbox"].messages() == []


async def test_the_person_who_started_a_send_is_told_when_it_ends(flow):  # noqa: F811
    mailing = await merge_mailing(flow, [record(1, "one@example.test"), record(2, "two@reject.test")])
    dispatch_id = await start(flow, headers=JANE, mailing_id=mailing.mailing_id, subject="Invoice {document_number}")
    outcome = await ended(flow, dispatch_id)
    assert outcome.requested_by is not None and outcome.requested_by.email == "jane@acme.test"

    async def notice():
        told = [m for m in map(parsed, flow["mailbox"].messages()) if m["To"] == "jane@acme.test"]
        return told or None

    [message] = await wait_for(notice)
    assert message["Subject"] == "Sending of \u201cNotices\u201d complete: 1 sent, 1 not sent"
    assert not message.is_multipart() and message.get_content_type() == "text/plain"  # nothing attached
    text = message.get_content()
    assert "Sent: 1" in text and "Not sent: 1" in text and "- INV-0002: 550" in text


async def wait_for(read, expected=None, timeout: float = 30):
    """What `read` returns once it equals `expected` (or is truthy, when none is given)."""

    async def matched():
        value = await read()
        return value if (value == expected if expected is not None else value) else None

    return await wait_until(matched, timeout=timeout)
