"""What dispatch refuses at its edges, over HTTP (422 naming the field) and on the bus (a refused dispatch
saying why), before anything is recorded or sent: addresses outside ASCII, control characters in a
subject, more recipients than a send may have."""

import uuid

import httpx
import pytest
from publipost_bus import Bus
from publipost_contracts import DispatchRequested
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.settings import DispatchSettings
from publipost_localstack.processes import free_port
from publipost_settings import ServiceSettings

from tests.credentials import credentials
from tests.support import wait_until

ACME = credentials("acme")


@pytest.fixture
async def dispatch(make_settings, running):
    # Nothing answers at merge_url: whatever gets past the edge fails loudly instead of being sent.
    settings = make_settings(DispatchSettings, merge_url=f"http://127.0.0.1:{free_port()}", max_recipients_per_send=3)
    service = await running(build_dispatch(settings))
    system = Bus(make_settings(ServiceSettings, service_name="crm"), publishes=[DispatchRequested])
    await system.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://d") as http:
        yield http, system
    await system.stop()


def refused(response: httpx.Response) -> dict:
    assert response.status_code == 422, (response.status_code, response.text)
    return response.json()["detail"][0]


SEND = {"mailing_id": "m-1", "document_id": "d-1", "to": ["client@example.test"]}


async def test_an_address_outside_ascii_is_refused_with_422_naming_its_field(dispatch):
    """jöe@exämple.test once reached the SMTP client: a 500, and a history entry queued, then "interrupted"."""
    http, _ = dispatch
    send = refused(await http.post("/sends", headers=ACME, json={**SEND, "to": ["jöe@exämple.test"]}))
    assert send["loc"] == ["body", "to"]
    assert "'jöe@exämple.test' is not a valid e-mail address: only ASCII addresses are accepted" in send["msg"]
    assert "xn--" in send["msg"]  # how to write an internationalised domain

    copy = refused(await http.post("/dispatches", headers=ACME, json={"mailing_id": "m-1", "cc": ["joe@exämple.test"]}))
    assert copy["loc"] == ["body", "cc"]
    history = (await http.get("/history", headers=ACME)).json()
    assert history["items"] == []


@pytest.mark.parametrize("character", ["\x00", "\x0b", "\x0c", "\u2028"])
async def test_a_control_character_in_a_subject_is_refused_with_422_naming_the_subject(dispatch, character):
    http, _ = dispatch
    send = refused(await http.post("/sends", headers=ACME, json={**SEND, "subject": f"Invoice{character}{{document_number}}"}))
    assert send["loc"] == ["body", "subject"]
    assert f"contains the control character U+{ord(character):04X}" in send["msg"]
    request = refused(await http.post("/dispatches", headers=ACME, json={"mailing_id": "m-1", "subject": f"A{character}"}))
    assert request["loc"] == ["body", "subject"]


async def test_to_cc_and_bcc_together_are_capped_per_send(dispatch):
    http, _ = dispatch
    many = {**SEND, "cc": ["c1@example.test", "c2@example.test"], "bcc": ["b1@example.test"]}
    send = refused(await http.post("/sends", headers=ACME, json=many))
    assert send["loc"] == ["body", "bcc"]
    assert send["msg"] == (
        "to, cc and bcc name 4 addresses (1, 2, 1); at most 3 per send (PUBLIPOST_MAX_RECIPIENTS_PER_SEND)"
    )
    copies = {"mailing_id": "m-1", "cc": [f"c{n}@example.test" for n in range(4)]}
    assert refused(await http.post("/dispatches", headers=ACME, json=copies))["loc"] == ["body", "cc"]
    assert refused(await http.post("/dispatches/preview", headers=ACME, json=copies))["loc"] == ["body", "cc"]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"to": ["jöe@exämple.test"]}, "to: 'jöe@exämple.test' is not a valid e-mail address: only ASCII"),
        ({"subject": "Invoice\x0c{document_number}"}, "subject 'Invoice\\x0c{document_number}' contains the control"),
        ({"bcc": [f"b{n}@example.test" for n in range(4)]}, "bcc: to, cc and bcc name 4 addresses (0, 0, 4)"),
    ],
)
async def test_a_dispatch_requested_on_the_bus_is_refused_for_what_the_api_refuses(dispatch, fields, reason):
    http, system = dispatch
    event = DispatchRequested(
        tenant_id="acme", correlation_id=str(uuid.uuid4()), dispatch_id=str(uuid.uuid4()), mailing_id="m-1", **fields
    )
    await system.publish(event)

    async def status() -> dict | None:
        response = await http.get(f"/dispatches/{event.dispatch_id}", headers=ACME)
        return response.json() if response.status_code == 200 and response.json()["status"] == "refused" else None

    refusal = await wait_until(status, timeout=20)
    assert refusal["reason"].startswith(reason), refusal["reason"]
    assert refusal["total"] == 0
