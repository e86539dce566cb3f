"""The recipient directory against the real broker and database."""

import uuid

import httpx
import pytest
from publipost_bus import Bus
from publipost_contracts import AddressAnswer, AddressQuestion, RecipientsResolved, ResolveRecipients
from publipost_recipient_directory.app import build
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_settings import ServiceSettings

from tests.credentials import credentials

ACME = credentials("acme")

FULL = {
    "email": "compta@dupont.example",
    "name": "Dupont SARL",
    "cc": ["direction@dupont.example"],
    "document_type": "invoice",
    "format": "pdf",
    "contacts": [
        {"name": "Paul", "email": "paul@dupont.example", "correspondence_types": ["Reminder", "due_notice"]},
    ],
    "billing_email": "factures@dupont.example",
    "main_email": "contact@dupont.example",
    "phone": "+33 1 23 45 67 89",
    "postal_address": "12 rue de la Paix",
    "postal_code": "75002",
    "locality": "Paris",
    "country": "fr",
    "promotional_consent": True,
    "family": "company",
    "type": "customer",
    "last_visit_date": "2024-03-31",
    "attributes": {"sector": "retail"},
}


@pytest.fixture
async def directory(make_settings, running):
    service = await running(build(make_settings(RecipientDirectorySettings)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://d") as http:
        yield service, http


@pytest.fixture
async def ask_all(directory, make_settings):
    """Ask the directory over the bus, as dispatch does: many questions in one request."""
    dispatch = Bus(make_settings(ServiceSettings, service_name="dispatch"), publishes=[ResolveRecipients])
    await dispatch.start()

    async def ask_all(questions: list[dict[str, object]], tenant: str = "acme") -> list[AddressAnswer]:
        event = ResolveRecipients(
            tenant_id=tenant,
            correlation_id=str(uuid.uuid4()),
            questions=[AddressQuestion(key=f"q{n}", **question) for n, question in enumerate(questions)],
        )
        reply = await dispatch.request(event, RecipientsResolved, timeout_s=10)
        return reply.answers

    yield ask_all
    await dispatch.stop()


@pytest.fixture
def ask(ask_all):
    async def ask(tenant: str = "acme", **question: object) -> AddressAnswer:
        [answer] = await ask_all([question], tenant)
        return answer

    return ask


async def test_recipients_are_created_replaced_listed_by_page_and_deleted_per_tenant(directory):
    _, http = directory
    created = await http.put("/recipients/C001", headers=ACME, json={"email": "Ann@Example.TEST", "name": "Ann"})
    replaced = await http.put("/recipients/C001", headers=ACME, json={"email": "ann@example.test", "cc": ["b@x.test"]})
    for n in range(2, 6):
        await http.put(f"/recipients/C00{n}", headers=ACME, json={"email": f"c{n}@example.test"})

    assert created.status_code == 201 and created.json()["email"] == "Ann@example.test"
    assert replaced.status_code == 200 and replaced.json()["cc"] == ["b@x.test"]
    assert replaced.json()["name"] is None
    first = (await http.get("/recipients", headers=ACME, params={"limit": 3})).json()
    second = (await http.get("/recipients", headers=ACME, params={"limit": 3, "after": first["next_after"]})).json()
    assert [r["customer_number"] for r in first["items"] + second["items"]] == [f"C00{n}" for n in range(1, 6)]
    assert second["next_after"] is None
    assert (await http.get("/recipients/C001", headers=credentials("other"))).status_code == 404
    assert (await http.delete("/recipients/C001", headers=ACME)).status_code == 204
    assert (await http.get("/recipients/C001", headers=ACME)).status_code == 404


async def test_every_attribute_of_a_recipient_is_stored_and_read_back(directory):
    _, http = directory

    response = await http.put("/recipients/C001", headers=ACME, json=FULL)

    assert response.status_code == 201, response.text
    stored = (await http.get("/recipients/C001", headers=ACME)).json()
    expected = {
        **FULL,
        "country": "FR",
        "contacts": [{**FULL["contacts"][0], "correspondence_types": ["reminder", "due_notice"]}],
    }
    assert {k: stored[k] for k in FULL} == expected
    assert stored["customer_number"] == "C001"


async def test_a_new_recipient_gets_the_defaults_and_blank_text_is_no_value(directory):
    _, http = directory

    stored = (await http.put("/recipients/C001", headers=ACME, json={"email": " ", "phone": ""})).json()

    assert (stored["format"], stored["promotional_consent"], stored["contacts"], stored["attributes"]) == (
        None,  # no format stated: documents go as their mailing makes them
        False,
        [],
        {},
    )
    assert (stored["email"], stored["phone"]) == (None, None)


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"email": "not an address"}, ["body", "email"], "not an address"),
        ({"billing_email": "x@"}, ["body", "billing_email"], "'x@' is not a valid e-mail address"),
        ({"email": "jöe@exämple.test"}, ["body", "email"], "only ASCII addresses are accepted"),
        ({"cc": ["ok@x.test", "anne@société.test"]}, ["body", "cc"], "'anne@société.test' (only ASCII"),
        ({"cc": ["ok@x.test", "bad"]}, ["body", "cc"], "'bad'"),
        ({"contacts": [{"name": "Ann"}]}, ["body", "contacts", 0, "email"], "Field required"),
        ({"contacts": [{"email": "a@@x"}]}, ["body", "contacts", 0, "email"], "not a valid e-mail address"),
        ({"country": "France"}, ["body", "country"], "two-letter country code"),
        ({"phone": "call me"}, ["body", "phone"], "not a phone number"),
        ({"format": "odt"}, ["body", "format"], "'pdf', 'docx', 'facturx' or 'ubl'"),
        ({"last_visit_date": "yesterday"}, ["body", "last_visit_date"], "date"),
        ({"attributes": {"a b": "x"}}, ["body", "attributes", "a b", "[key]"], "pattern"),
        ({"document_type": "invoce"}, ["body", "document_type"], "unknown document type 'invoce'"),
        ({"emial": "a@x.test"}, ["body", "emial"], "Extra inputs are not permitted"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(directory, body, loc, words):
    _, http = directory

    response = await http.put("/recipients/C009", headers=ACME, json=body)

    assert response.status_code == 422
    problem = response.json()["detail"][0]
    assert problem["loc"] == loc
    assert words in problem["msg"]
    assert (await http.get("/recipients/C009", headers=ACME)).status_code == 404


async def test_a_bad_customer_number_is_refused(directory):
    _, http = directory

    response = await http.put("/recipients/C 1", headers=ACME, json={})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "customer_number"]


async def test_search_by_text_and_attributes_pages_through_the_matches(directory):
    _, http = directory
    people = {
        "C001": {"name": "Anne Dupont", "country": "FR", "document_type": "invoice", "locality": "Paris"},
        "C002": {"name": "Bernard", "email": "dupont.b@example.test", "country": "FR", "document_type": "invoice"},
        "C003": {"name": "Claire", "country": "BE", "document_type": "invoice"},
        "C004": {"name": "DUPONT SA", "country": "FR", "document_type": "quote"},
        "D001": {"name": "Denis", "country": "FR", "document_type": "invoice"},
    }
    for number, body in people.items():
        assert (await http.put(f"/recipients/{number}", headers=ACME, json=body)).status_code == 201

    async def search(**params: object) -> list[str]:
        page = (await http.get("/recipients", headers=ACME, params=params)).json()
        return [r["customer_number"] for r in page["items"]]

    assert await search(q="dupont") == ["C001", "C002", "C004"]
    assert await search(q="C00", country="fr", document_type="invoice") == ["C001", "C002"]
    assert await search(q="d0") == ["D001"]
    assert await search(locality="Paris") == ["C001"]
    assert await search(q="dupont", limit=2, after="C001") == ["C002", "C004"]
    assert await search(q="(") == []


async def test_the_resolution_order_is_per_tenant_with_a_default(directory):
    _, http = directory

    default = await http.get("/settings/resolution", headers=ACME)
    changed = await http.put("/settings/resolution", headers=ACME, json={"order": ["billing", "record"]})

    assert default.json() == {"order": ["record", "directory", "billing", "main"]}
    assert changed.status_code == 200
    assert (await http.get("/settings/resolution", headers=ACME)).json() == {"order": ["billing", "record"]}
    assert (await http.get("/settings/resolution", headers=credentials("other"))).json() == default.json()


@pytest.mark.parametrize(
    ("order", "words"),
    [
        ([], "at least one rule"),
        (["record", "contact"], "'contact' is not placed by hand"),
        (["record", "fax"], "unknown rules ['fax']"),
        (["main", "main"], "each rule may appear once"),
    ],
)
async def test_a_bad_resolution_order_is_refused_naming_the_field(directory, order, words):
    _, http = directory

    response = await http.put("/settings/resolution", headers=ACME, json={"order": order})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "order"]
    assert words in response.json()["detail"][0]["msg"]
    assert (await http.get("/settings/resolution", headers=ACME)).json()["order"][0] == "record"


async def test_dispatch_asks_over_the_bus_and_hears_which_rule_gave_the_address(directory, ask):
    _, http = directory
    await http.put("/recipients/C100", headers=ACME, json={"email": "billing@example.test", "cc": ["boss@x.test"]})

    from_record = await ask(customer_number="C100", record_email="own@example.test")
    from_directory = await ask(customer_number="C100", record_email=None)
    nowhere = await ask(customer_number="C404", record_email="")

    assert (from_record.email, from_record.rule, from_record.cc) == ("own@example.test", "record", ["boss@x.test"])
    assert (from_directory.email, from_directory.rule) == ("billing@example.test", "directory")
    assert nowhere.email is None and nowhere.rule is None and nowhere.cc == []
    assert nowhere.reason == (
        "record: the record has no e-mail; directory, billing, main: customer C404 is not in the recipient directory"
    )


async def test_a_batch_of_questions_gets_one_answer_each_under_its_key(directory, ask_all):
    _, http = directory
    for n in range(3):
        await http.put(f"/recipients/C10{n}", headers=ACME, json={"email": f"c{n}@example.test"})
    questions = [{"customer_number": f"C10{n % 4}", "record_email": None} for n in range(8)]

    answers = await ask_all(questions)

    assert [a.key for a in answers] == [f"q{n}" for n in range(8)]
    assert [a.email for a in answers] == ["c0@example.test", "c1@example.test", "c2@example.test", None] * 2


async def test_a_correspondence_type_picks_the_contact_before_the_record(directory, ask):
    _, http = directory
    await http.put("/recipients/C100", headers=ACME, json=FULL)

    reminder = await ask(customer_number="C100", correspondence_type="reminder")
    own_address = await ask(customer_number="C100", record_email="own@example.test", correspondence_type="reminder")
    no_such_contact = await ask(customer_number="C100", correspondence_type="newsletter")

    assert (reminder.email, reminder.rule, reminder.cc) == ("paul@dupont.example", "contact", FULL["cc"])
    assert (own_address.email, own_address.rule) == ("paul@dupont.example", "contact")
    assert (no_such_contact.email, no_such_contact.rule) == ("compta@dupont.example", "directory")


async def test_a_refused_record_address_yields_to_the_directory_and_the_answer_carries_the_format(directory, ask):
    _, http = directory
    await http.put("/recipients/C100", headers=ACME, json={**FULL, "document_type": "invoice", "format": "docx"})

    refused_before = await ask(customer_number="C100", record_email="old@example.test", prefer_directory=True)
    invoice = await ask(customer_number="C100", record_email="own@example.test", document_type="invoice")
    order = await ask(customer_number="C100", record_email="own@example.test", document_type="order")
    unknown = await ask(customer_number="C999", record_email="own@example.test", document_type="invoice")

    assert (refused_before.email, refused_before.rule) == ("compta@dupont.example", "directory")
    assert [invoice.format, order.format, unknown.format] == ["docx", None, None]  # another type: none stated


async def test_the_tenant_order_decides_between_billing_and_main_addresses(directory, ask):
    _, http = directory
    await http.put("/recipients/C100", headers=ACME, json={**FULL, "email": None})
    await http.put("/settings/resolution", headers=ACME, json={"order": ["main", "billing", "record"]})

    tenant_order = await ask(customer_number="C100", record_email="own@example.test")
    other_tenant = await ask(tenant="other", customer_number="C100", record_email="own@example.test")

    assert (tenant_order.email, tenant_order.rule) == ("contact@dupont.example", "main")
    assert other_tenant.rule == "record"


async def test_no_address_lists_every_rule_that_failed(directory, ask):
    _, http = directory
    await http.put("/recipients/C100", headers=ACME, json={"name": "Nobody"})

    answer = await ask(customer_number="C100", record_email="a@@b", correspondence_type="reminder")

    assert answer.email is None and answer.rule is None
    assert answer.reason.split("; ") == [
        "contact: customer C100 has no contact for correspondence type 'reminder'",
        "record: the record's e-mail 'a@@b' is not a valid address",
        "directory: customer C100 has no e-mail in the recipient directory",
        "billing: customer C100 has no billing e-mail in the recipient directory",
        "main: customer C100 has no main e-mail in the recipient directory",
    ]
