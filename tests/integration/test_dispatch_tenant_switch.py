"""A tenant's switch for e-mail distribution (issue 16, point 10): off, every way of sending is refused
with 409 naming why, and a dispatch.requested from the bus is recorded as refused with the same reason."""

import uuid

import httpx
import pytest
from publipost_auth import Role
from publipost_bus import Bus
from publipost_contracts import DispatchRequested
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.settings import DispatchSettings
from publipost_localstack.processes import free_port
from publipost_settings import ServiceSettings

from tests.credentials import credentials
from tests.support import wait_until

ACME, ADMIN = credentials("acme"), credentials("acme", Role.ADMIN)
OFF = "e-mail distribution is turned off for tenant 'acme'"


@pytest.fixture
async def dispatch(make_settings, running):
    # Nothing answers at merge_url: a refusal must come before anything is looked up.
    settings = make_settings(DispatchSettings, merge_url=f"http://127.0.0.1:{free_port()}")
    service = await running(build_dispatch(settings))
    system = Bus(make_settings(ServiceSettings, service_name="crm"), publishes=[DispatchRequested])
    await system.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://d") as http:
        yield http, system
    await system.stop()


async def test_e_mail_distribution_is_on_by_default_and_an_admin_turns_it_off(dispatch):
    http, _ = dispatch
    assert (await http.get("/settings/sending", headers=ACME)).json()["email_enabled"] is True
    operator = credentials("acme", Role.OPERATOR)
    assert (await http.put("/settings/sending", headers=operator, json={"email_enabled": False})).status_code == 403
    turned = await http.put("/settings/sending", headers=ADMIN, json={"email_enabled": False})
    assert turned.status_code == 200, turned.text
    assert (await http.get("/settings/sending", headers=ACME)).json()["email_enabled"] is False
    other = credentials("globex")
    assert (await http.get("/settings/sending", headers=other)).json()["email_enabled"] is True


async def test_turned_off_every_send_is_refused_with_409_naming_why(dispatch):
    http, system = dispatch
    await http.put("/settings/sending", headers=ADMIN, json={"email_enabled": False})
    for path, body in [
        ("/dispatches", {"mailing_id": "m-1"}),
        ("/dispatches/preview", {"mailing_id": "m-1"}),
        ("/sends", {"mailing_id": "m-1", "document_id": "d-1", "to": ["client@example.test"]}),
    ]:
        response = await http.post(path, headers=ACME, json=body)
        assert response.status_code == 409, (path, response.status_code, response.text)
        assert OFF in response.json()["detail"], response.text

    event = DispatchRequested(tenant_id="acme", correlation_id=str(uuid.uuid4()), dispatch_id=str(uuid.uuid4()),
                              mailing_id="m-1")
    await system.publish(event)

    async def refused() -> dict | None:
        response = await http.get(f"/dispatches/{event.dispatch_id}", headers=ACME)
        return response.json() if response.status_code == 200 and response.json()["status"] == "refused" else None

    refusal = await wait_until(refused, timeout=20)
    assert OFF in refusal["reason"], refusal["reason"]


async def test_a_sender_prefix_needs_the_platform_s_sender_domain(dispatch):
    http, _ = dispatch
    refused = await http.put("/settings/sending", headers=ADMIN, json={"sender_prefix": "billing"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"].startswith("sender_prefix: the platform has no sender domain"), refused.text


@pytest.fixture
async def with_domain(make_settings, running):
    settings = make_settings(DispatchSettings, merge_url=f"http://127.0.0.1:{free_port()}", sender_domain="mail.publipost.test")
    service = await running(build_dispatch(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://d") as http:
        yield http


async def test_a_sender_prefix_is_an_e_mail_local_part(with_domain):
    http = with_domain
    for bad in ["bill ing", "bill@ing", "", "a" * 65, "x\r\nBcc: y"]:
        refused = await http.put("/settings/sending", headers=ADMIN, json={"sender_prefix": bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert "sender_prefix" in refused.text, refused.text
    chosen = await http.put("/settings/sending", headers=ADMIN, json={"sender_prefix": "acme.billing"})
    assert chosen.status_code == 200, chosen.text
    view = (await http.get("/settings/sending", headers=ACME)).json()
    assert view == {"email_enabled": True, "sender_prefix": "acme.billing", "sender": "acme.billing@mail.publipost.test"}
