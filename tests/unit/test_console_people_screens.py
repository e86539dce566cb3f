"""The console's new mailing, rename, directory, template and one-document send screens without a browser:
the console's app driven over ASGI, the services behind it faked by what they answer; what a person sees,
what the services are asked."""

import json
import time

import pytest

from tests.unit.fakes.console import FakeServices, console_over, sign_in

TEMPLATE = {"id": "t-1", "name": "Notice", "version": 1, "custom_fields": ["signatory"], "entity_type": "client"}


@pytest.fixture
def services() -> FakeServices:
    fake = FakeServices()
    fake.answer("template", "GET", "/templates", {"items": [TEMPLATE], "total": 1, "page": 1, "per_page": 100})
    fake.answer("template", "GET", "/templates/t-1", TEMPLATE)
    fake.answer("directory", "GET", "/segments", [{"id": "s-1", "name": "Paris", "filter": {}}])
    return fake


@pytest.fixture
async def console(services):
    async for client in console_over(services):
        sign_in(client, ["operator"])
        yield client


async def test_a_mailing_from_an_uploaded_file_goes_to_merge_as_a_form_with_the_file(console, services):
    services.answer("merge", "POST", "/mailings", {"request_id": "r", "mailing_id": "m-1"}, 202)
    fields = {"name": "April", "template_id": "t-1", "cf_signatory": "Jane", "source": "file"}
    answer = await console.post(
        "/mailings/new", data=fields, files={"file": ("records.csv", b"id,name\nr1,Ann\n", "text/csv")}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/mailings/m-1/starting"
    sent = services.sent("merge", "POST", "/mailings")
    assert sent.headers["content-type"].startswith("multipart/form-data")
    body = sent.content.decode()
    assert 'filename="records.csv"' in body and "id,name\nr1,Ann\n" in body
    assert '{"signatory": "Jane"}' in body and "April" in body


async def test_a_new_selection_is_saved_as_a_segment_then_the_mailing_names_it(console, services):
    services.answer("directory", "POST", "/segments", {"id": "s-9", "name": "Over 100000"}, 201)
    services.answer("merge", "POST", "/mailings", {"request_id": "r", "mailing_id": "m-2"}, 202)
    form = {
        "template_id": "t-1",
        "cf_signatory": "Jane",
        "source": "filter",
        "selection_name": "Over 100000",
        "f_country_in": "FR",
        "crit_attr_0": "mileage",
        "crit_op_0": "gt",
        "crit_value_0": "100000",
    }
    answer = await console.post("/mailings/new", data=form)
    assert answer.status_code == 303
    segment = json.loads(services.sent("directory", "POST", "/segments").content)
    assert segment == {
        "name": "Over 100000",
        "filter": {"country_in": ["FR"], "criteria": [{"attribute": "mileage", "op": "gt", "value": 100000.0}]},
    }
    started = json.loads(services.sent("merge", "POST", "/mailings").content)
    assert started["segment_id"] == "s-9" and started["custom_fields"] == {"signatory": "Jane"}


async def test_merges_refusal_is_shown_above_the_form_filled_as_it_was(console, services):
    refusal = {"detail": [{"loc": ["body", "file"], "msg": "line 3, column email: not an address", "type": "x"}]}
    services.answer("merge", "POST", "/mailings", refusal, 422)
    form = {"name": "April", "template_id": "t-1", "source": "segment", "segment_id": "s-1"}
    page = await console.post("/mailings/new", data=form)
    assert page.status_code == 422
    assert "The merge service answered: file: line 3, column email: not an address" in page.text
    assert 'value="April"' in page.text and '<option value="s-1" selected>' in page.text


async def test_a_refused_import_lists_every_problem_in_a_table(console, services):
    refusal = {
        "message": "the file was not imported, nothing was stored: 2 problems",
        "error_count": 2,
        "detail": [
            {"line": 2, "column": "email", "column_number": 4, "msg": "not an e-mail address"},
            {"line": 3, "column": "document_type", "column_number": 2, "msg": "unknown document type"},
        ],
    }
    services.answer("directory", "POST", "/recipients/import", refusal, 422)
    page = await console.post("/directory/import", files={"file": ("bad.csv", b"customer_number\n", "text/csv")})
    assert page.status_code == 422
    assert "nothing was stored: 2 problems" in page.text
    assert "<td>2</td><td>email</td><td>not an e-mail address</td>" in page.text
    assert "<td>3</td><td>document_type</td><td>unknown document type</td>" in page.text


async def test_a_rename_asks_merge_and_returns_where_it_came_from(console, services):
    services.answer("merge", "PATCH", "/mailings/m-1", {"id": "m-1", "name": "May"})
    answer = await console.post("/mailings/m-1/rename", data={"name": " May ", "back": "/mailings"})
    assert answer.status_code == 303 and answer.headers["location"] == "/mailings"
    assert json.loads(services.sent("merge", "PATCH", "/mailings/m-1").content) == {"name": "May"}


async def test_a_mailing_of_one_document_offers_its_clients_addresses_and_sends_to_the_chosen_one(console, services):
    mailing = {"id": "m-1", "name": "April", "documents": 1, "sendable": True, "output": "pdf"}
    services.answer("merge", "GET", "/mailings/m-1", mailing)
    document = {"id": "d-1", "email": "two@reject.test", "customer_number": "C2"}
    services.answer("merge", "GET", "/mailings/m-1/documents", {"items": [document], "next_after": None})
    client = {"email": "two@example.test", "billing_email": "billing@example.test", "contacts": []}
    services.answer("directory", "GET", "/recipients/C2", client)
    services.answer("dispatch", "GET", "/accounts", [])
    services.answer("template", "GET", "/email-templates", {"items": []})
    page = await console.get("/mailings/m-1/send")
    for label in (
        "two@reject.test (the document&#39;s record)",
        "two@example.test (the client&#39;s address in the directory)",
        "billing@example.test (the client&#39;s billing address)",
    ):
        assert label in page.text
    services.answer("dispatch", "POST", "/dispatches", {"dispatch_id": "x"}, 202)
    form = {"dispatch_id": "x", "to": "billing@example.test", "subject": "", "body": "Hi"}
    answer = await console.post("/mailings/m-1/send", data=form)
    assert answer.status_code == 303
    assert json.loads(services.sent("dispatch", "POST", "/dispatches").content)["to"] == ["billing@example.test"]


async def test_a_mailing_merge_refused_after_taking_its_request_says_why_instead_of_waiting_for_ever(console, services):
    refusal = "mailing 'm-1' will not exist: merge refused its request (template_id: no template 't-1')"
    services.answer("merge", "GET", "/mailings/m-1", {"detail": refusal}, 410)

    polled = await console.get("/mailings/m-1/starting", headers={"HX-Request": "true"})
    page = await console.get("/mailings/m-1/starting")

    assert polled.status_code == 204 and polled.headers["HX-Redirect"] == "/mailings/m-1/starting"
    assert page.status_code == 410 and "no template &#39;t-1&#39;" in page.text


async def test_a_send_s_page_waits_for_dispatch_to_record_it_for_a_while_only(console, services):
    """dispatch answers 404 until it has recorded a send it accepted: the send's page says "Preparing" then.
    It used to say so for ever, for a send that never came and for an id no send of the console made."""
    services.answer("dispatch", "GET", "/dispatches/d-1", {"detail": "no dispatch 'd-1' for this tenant"}, 404)
    now = int(time.time())

    just_sent = await console.get(f"/dispatches/d-1?since={now}")
    polled = await console.get(f"/dispatches/d-1/progress?since={now}", headers={"HX-Request": "true"})
    long_after = await console.get(f"/dispatches/d-1/progress?since={now - 600}", headers={"HX-Request": "true"})
    unknown = await console.get("/dispatches/d-1")

    assert just_sent.status_code == 200 and "Preparing" in just_sent.text
    assert f"/dispatches/d-1/progress?since={now}" in polled.text
    assert long_after.status_code == 204 and long_after.headers["HX-Redirect"] == "/dispatches/d-1"
    assert unknown.status_code == 404 and "no dispatch &#39;d-1&#39;" in unknown.text


async def test_a_page_the_console_does_not_have_is_a_page_in_the_person_s_language(console):
    english = await console.get("/directory/clients")
    french = await console.get("/directory/clients", headers={"Accept-Language": "fr-FR,fr;q=0.9"})

    assert english.status_code == 404 and "There is no such page." in english.text
    assert french.status_code == 404 and "Cette page n&#39;existe pas." in french.text
