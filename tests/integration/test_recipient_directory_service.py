"""The recipient directory against the real broker and database."""

import uuid

import httpx
import pytest
from publipost_bus import Bus
from publipost_contracts import RecipientResolved, ResolveRecipient
from publipost_recipient_directory.app import build
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_settings import ServiceSettings

ACME = {"X-Tenant-Id": "acme"}


@pytest.fixture
async def directory(make_settings, running):
    service = await running(build(make_settings(RecipientDirectorySettings)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://d") as http:
        yield service, http


async def test_recipients_are_created_replaced_listed_by_page_and_deleted_per_tenant(directory):
    _, http = directory
    created = await http.put("/recipients/C001", headers=ACME, json={"email": "Ann@Example.TEST", "name": "Ann"})
    replaced = await http.put("/recipients/C001", headers=ACME, json={"email": "ann@example.test", "cc": ["b@x.test"]})
    for n in range(2, 6):
        await http.put(f"/recipients/C00{n}", headers=ACME, json={"email": f"c{n}@example.test"})

    assert created.status_code == 201 and created.json()["email"] == "Ann@example.test"
    assert replaced.status_code == 200 and replaced.json()["cc"] == ["b@x.test"]
    first = (await http.get("/recipients", headers=ACME, params={"limit": 3})).json()
    second = (await http.get("/recipients", headers=ACME, params={"limit": 3, "after": first["next_after"]})).json()
    assert [r["customer_number"] for r in first["items"] + second["items"]] == [f"C00{n}" for n in range(1, 6)]
    assert second["next_after"] is None
    assert (await http.get("/recipients/C001", headers={"X-Tenant-Id": "other"})).status_code == 404
    assert (await http.delete("/recipients/C001", headers=ACME)).status_code == 204
    assert (await http.get("/recipients/C001", headers=ACME)).status_code == 404


async def test_a_bad_address_is_refused_naming_the_field_and_nothing_is_stored(directory):
    _, http = directory
    response = await http.put("/recipients/C009", headers=ACME, json={"email": "not an address"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "email"]
    assert "not an address" in response.json()["detail"][0]["msg"]
    assert (await http.get("/recipients/C009", headers=ACME)).status_code == 404


async def test_dispatch_asks_over_the_bus_and_hears_which_rule_gave_the_address(directory, make_settings):
    _, http = directory
    await http.put("/recipients/C100", headers=ACME, json={"email": "billing@example.test"})
    dispatch = Bus(make_settings(ServiceSettings, service_name="dispatch"), publishes=[ResolveRecipient])
    await dispatch.start()
    try:

        async def ask(**question: object) -> RecipientResolved:
            event = ResolveRecipient(tenant_id="acme", correlation_id=str(uuid.uuid4()), **question)
            return await dispatch.request(event, RecipientResolved, timeout_s=10)

        from_record = await ask(customer_number="C100", record_email="own@example.test")
        from_directory = await ask(customer_number="C100", record_email=None)
        nowhere = await ask(customer_number="C404", record_email="")
    finally:
        await dispatch.stop()

    assert (from_record.email, from_record.rule) == ("own@example.test", "record")
    assert (from_directory.email, from_directory.rule) == ("billing@example.test", "directory")
    assert nowhere.email is None and nowhere.rule is None
    assert "C404 is not in the recipient directory" in nowhere.reason
