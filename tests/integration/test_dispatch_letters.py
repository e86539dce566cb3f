"""A plain e-mail to a client selection (issue 16, point 10), against the real pieces: the recipient directory
(its segments over HTTP, its address resolution on RabbitMQ), dispatch, the database and the SMTP capture
server. A garage writes to the clients whose inspection is due: only they get it, filled from their record,
with nothing attached."""

import email
import email.policy
import uuid

import httpx
import pytest
from publipost_bus import Bus
from publipost_contracts import EmailsRequested
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.settings import DispatchSettings
from publipost_localstack.processes import free_port
from publipost_recipient_directory.app import build as build_directory
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_settings import ServiceSettings

from tests.credentials import credentials
from tests.support import wait_until

pytestmark = pytest.mark.slow

GARAGE, GLOBEX = credentials("garage"), credentials("globex")
CLIENTS = {
    "C1": {"email": "ann@example.test", "name": "Ann Martin", "attributes": {"inspection_due": "2026-12-20"}},
    "C2": {"email": "bob@example.test", "name": "Bob Durand", "attributes": {"inspection_due": "2027-03-01"}},
    "C3": {"email": "cid@example.test", "name": "Cid Petit", "attributes": {"inspection_due": "2026-11-30"}},
    "C4": {"email": "dan@example.test", "name": "Dan Roux"},  # no inspection recorded
}
LETTER = {
    "subject": "{client_name}, your car's inspection is due",
    "body": "Dear {client_name},\nyour car ({customer_number}) is due for its inspection by {inspection_due}.\n",
}


@pytest.fixture
async def garage(make_settings, running, serve_http, mailbox):
    directory = await running(build_directory(make_settings(RecipientDirectorySettings)))
    directory_url = await serve_http(directory)
    nowhere = f"http://127.0.0.1:{free_port()}"  # a plain e-mail asks nothing of merge or template
    settings = make_settings(
        DispatchSettings, directory_url=directory_url, merge_url=nowhere, template_url=nowhere,
        smtp_host=mailbox.host, smtp_port=mailbox.port,
    )  # fmt: skip
    dispatch = await running(build_dispatch(settings))
    system = Bus(make_settings(ServiceSettings, service_name="crm"), publishes=[EmailsRequested])
    await system.start()
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(directory.http_app()), base_url="http://r") as directory_http,
        httpx.AsyncClient(transport=httpx.ASGITransport(dispatch.http_app()), base_url="http://d") as dispatch_http,
    ):
        for number, client in CLIENTS.items():
            stored = await directory_http.put(f"/recipients/{number}", headers=GARAGE, json=client)
            assert stored.status_code in (200, 201), stored.text
        due = {"attribute": "inspection_due", "op": "lte", "value": "2026-12-31"}
        segment = await directory_http.post(
            "/segments", headers=GARAGE, json={"name": "Inspection due", "filter": {"criteria": [due]}}
        )
        assert segment.status_code == 201, segment.text
        yield dispatch_http, segment.json()["id"], system
    await system.stop()


def messages(mailbox) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(raw, policy=email.policy.default) for raw in mailbox.messages()]


async def finished(http: httpx.AsyncClient, dispatch_id: str) -> dict:
    async def ended() -> dict | None:
        view = (await http.get(f"/dispatches/{dispatch_id}", headers=GARAGE)).json()
        return view if view.get("status") in ("completed", "refused") else None

    return await wait_until(ended, timeout=60)


async def test_only_the_segment_s_clients_get_the_letter_filled_from_their_record_with_nothing_attached(
    garage, mailbox
):
    http, segment_id, _ = garage
    started = await http.post(
        "/emails", headers=GARAGE, json={"email_id": "due-dec", "segment_id": segment_id, **LETTER}
    )
    assert started.status_code == 202, started.text
    assert started.json() == {"dispatch_id": "due-dec"}

    view = await finished(http, "due-dec")
    assert (view["status"], view["total"], view["sent"], view["failed"]) == ("completed", 2, 2, 0)
    assert (view["mailing_id"], view["segment_id"]) == (None, segment_id)

    sent = {m["To"]: m for m in messages(mailbox)}
    assert sorted(sent) == ["ann@example.test", "cid@example.test"]  # due by the end of December only
    ann = sent["ann@example.test"]
    assert ann["Subject"] == "Ann Martin, your car's inspection is due"
    text = ann.get_content().replace("\r\n", "\n")
    assert text == "Dear Ann Martin,\nyour car (C1) is due for its inspection by 2026-12-20.\n"
    for message in sent.values():  # one text part, no attachment anywhere in it
        assert not message.is_multipart() and message.get_content_type() == "text/plain"
        assert list(message.iter_attachments()) == []
        assert [part.get_content_disposition() for part in message.walk()] == [None]

    deliveries = (await http.get("/dispatches/due-dec/deliveries", headers=GARAGE)).json()["items"]
    assert [(d["document_id"], d["document_number"], d["state"], d["address_rule"]) for d in deliveries] == [
        ("C1", "", "sent", "record"),
        ("C3", "", "sent", "record"),
    ]
    history = (await http.get("/history", headers=GARAGE)).json()["items"]
    assert sorted((h["customer_number"], h["document"], h["status"]) for h in history) == [
        ("C1", None, "sent"),
        ("C3", None, "sent"),
    ]

    # The segment is a filter: a second letter goes to whoever it holds then, under its own id; the person who
    # sent it (their token names their address) is told when it has gone.
    lea = credentials("garage", subject="user:lea", email="lea@garage.test")
    again = await http.post(
        "/emails", headers=lea, json={"email_id": "due-dec-reminder", "segment_id": segment_id, **LETTER}
    )
    assert again.status_code == 202, again.text
    assert (await finished(http, "due-dec-reminder"))["sent"] == 2

    async def told() -> list[email.message.EmailMessage] | None:
        return [m for m in messages(mailbox) if m["To"] == "lea@garage.test"] or None

    [notice] = await wait_until(told, timeout=30)
    assert notice["Subject"] == "Sending of \u201cdue-dec-reminder\u201d complete: 2 sent, 0 not sent"
    assert notice.get_content().startswith("The e-mail \u201cdue-dec-reminder\u201d to the clients of a selection has ended.")
    assert len(messages(mailbox)) == 5


async def test_another_tenant_can_neither_use_the_segment_nor_see_the_letter(garage, mailbox):
    http, segment_id, _ = garage
    assert (
        await http.post("/emails", headers=GARAGE, json={"email_id": "mine", "segment_id": segment_id, **LETTER})
    ).status_code == 202
    await finished(http, "mine")

    refused = await http.post(
        "/emails", headers=GLOBEX, json={"email_id": "theirs", "segment_id": segment_id, **LETTER}
    )
    assert refused.status_code == 404, refused.text
    assert refused.json()["detail"] == f"segment_id: no segment {segment_id!r} for this tenant"
    assert (await http.get("/dispatches/mine", headers=GLOBEX)).status_code == 404
    assert (await http.get("/dispatches/theirs", headers=GLOBEX)).status_code == 404  # nothing was started
    assert len(messages(mailbox)) == 2


async def test_bad_letters_are_refused_naming_the_field(garage):
    http, segment_id, system = garage
    for body, field in [
        ({"segment_id": segment_id, "subject": "Invoice {document_number}", "body": "Hello"}, "subject"),
        ({"segment_id": segment_id, "subject": "Hello", "body": ""}, "body"),
        ({"segment_id": segment_id, **LETTER, "cc": ["not an address"]}, "address"),
        ({**LETTER}, "segment_id"),
    ]:
        refused = await http.post("/emails", headers=GARAGE, json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert field in refused.text, (field, refused.text)

    # Asked on the bus, an unknown segment is a dispatch refused with the reason.
    event = EmailsRequested(
        tenant_id="garage", correlation_id=str(uuid.uuid4()), email_id="bus-letter", segment_id="no-such", **LETTER
    )
    await system.publish(event)
    view = await finished(http, "bus-letter")
    assert (view["status"], view["reason"]) == ("refused", "segment_id: no segment 'no-such' for this tenant")
