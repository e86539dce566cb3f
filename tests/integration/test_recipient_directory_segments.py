"""Segments: saved filters and manual selections, and their recipients streamed as merge records."""

import json

import httpx
import pytest
from publipost_recipient_directory.app import build
from publipost_recipient_directory.settings import RecipientDirectorySettings

from tests.credentials import credentials

ACME = credentials("acme")

# A small population where each filter below picks a different set.
PEOPLE = {
    "C1": {
        "email": "ann@example.test",
        "name": "Ann",
        "phone": "01 23 45 67 89",
        "postal_address": "1 rue A",
        "postal_code": "75002",
        "locality": "Paris",
        "country": "FR",
        "promotional_consent": True,
        "family": "company",
        "type": "customer",
        "document_type": "invoice",
        "last_visit_date": "2024-06-01",
        "attributes": {"sector": "retail", "mileage": "120000", "first_registration": "2014-03-01", "make": "Renault"},
    },
    "C2": {
        "email": "bob@example.test",
        "name": "Bob",
        "postal_address": "2 rue B",
        "postal_code": "1000",
        "locality": "Bruxelles",
        "country": "BE",
        "family": "individual",
        "type": "prospect",
        "document_type": "quote",
        "last_visit_date": "2023-12-31",
        "attributes": {"sector": "food", "mileage": "9500", "first_registration": "2021-09-15", "make": "Peugeot"},
    },
    "C3": {
        "name": "Chloé",
        "phone": "+41 22 000 00 00",
        "postal_code": "1200",
        "locality": "Genève",
        "country": "CH",
        "promotional_consent": True,
        "family": "company",
        "type": "customer",
        "document_type": "invoice",
    },
    "C4": {"email": "dan@example.test", "name": "Dan", "attributes": {"mileage": "unknown", "make": "renault"}},
}


@pytest.fixture
async def directory(make_settings, running):
    service = await running(build(make_settings(RecipientDirectorySettings)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://d") as http:
        for number, body in PEOPLE.items():
            assert (await http.put(f"/recipients/{number}", headers=ACME, json=body)).status_code == 201
        yield http


async def members(http: httpx.AsyncClient, segment_id: str) -> list[dict]:
    response = await http.get(f"/segments/{segment_id}/recipients", headers=ACME)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


async def segment(http: httpx.AsyncClient, **definition: object) -> str:
    response = await http.post("/segments", headers=ACME, json={"name": "s", **definition})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ({}, ["C1", "C2", "C3", "C4"]),
        ({"country_in": ["fr", "BE"]}, ["C1", "C2"]),
        ({"country_not_in": ["FR", "BE"]}, ["C3", "C4"]),
        ({"has_email": True}, ["C1", "C2", "C4"]),
        ({"has_email": False}, ["C3"]),
        ({"has_phone": True}, ["C1", "C3"]),
        ({"has_phone": False}, ["C2", "C4"]),
        ({"has_postal_address": True}, ["C1", "C2"]),
        ({"has_postal_address": False}, ["C3", "C4"]),
        ({"visited_since": "2024-01-01"}, ["C1"]),
        ({"not_visited_since": "2024-01-01"}, ["C2", "C3", "C4"]),
        ({"opted_in": True}, ["C1", "C3"]),
        ({"opted_in": False}, ["C2", "C4"]),
        ({"family": ["company"]}, ["C1", "C3"]),
        ({"type": ["prospect"]}, ["C2"]),
        ({"postal_code": ["75002", "1200"]}, ["C1", "C3"]),
        ({"locality": ["Genève"]}, ["C3"]),
        ({"document_type": ["quote"]}, ["C2"]),
        ({"attributes": {"sector": "retail"}}, ["C1"]),
        # Issue 16: a garage selects its clients by their vehicles' custom attributes, not only by equality.
        ({"criteria": [{"attribute": "mileage", "op": "gt", "value": 100000}]}, ["C1"]),
        ({"criteria": [{"attribute": "mileage", "op": "lte", "value": 10000}]}, ["C2"]),
        ({"criteria": [{"attribute": "first_registration", "op": "lt", "value": "2015-01-01"}]}, ["C1"]),
        ({"criteria": [{"attribute": "make", "op": "contains", "value": "RENAULT"}]}, ["C1", "C4"]),
        ({"criteria": [{"attribute": "make", "op": "in", "value": ["Peugeot", "Citroën"]}]}, ["C2"]),
        ({"criteria": [{"attribute": "mileage", "op": "absent"}]}, ["C3"]),
        ({"criteria": [{"attribute": "make", "op": "ne", "value": "Peugeot"}]}, ["C1", "C3", "C4"]),
        (
            {
                "criteria": [
                    {"attribute": "mileage", "op": "gte", "value": 5000},
                    {"attribute": "first_registration", "op": "gte", "value": "2020-01-01"},
                ]
            },
            ["C2"],
        ),
        ({"opted_in": True, "has_email": True, "family": ["company"]}, ["C1"]),
        ({"has_phone": True, "has_postal_address": False, "not_visited_since": "2024-01-01"}, ["C3"]),
        ({"country_in": ["FR"], "opted_in": False}, []),
    ],
)
async def test_a_filter_segment_holds_the_recipients_matching_every_condition(directory, conditions, expected):
    segment_id = await segment(directory, filter=conditions)

    found = [r["customer_number"] for r in await members(directory, segment_id)]

    assert found == expected
    assert (await directory.get(f"/segments/{segment_id}/count", headers=ACME)).json() == {"count": len(expected)}


async def test_segment_recipients_are_merge_records(directory):
    segment_id = await segment(directory, filter={"country_in": ["FR"]})

    [ann] = await members(directory, segment_id)

    assert (ann["id"], ann["customer_number"], ann["email"], ann["name"]) == ("C1", "C1", "ann@example.test", "Ann")
    assert (ann["locality"], ann["last_visit_date"], ann["attributes"]) == ("Paris", "2024-06-01", PEOPLE["C1"]["attributes"])
    assert "tenant_id" not in ann and "_id" not in ann


async def test_a_manual_selection_holds_the_listed_customers_that_exist(directory):
    segment_id = await segment(directory, customer_numbers=["C4", "C2", "C404", "C2"])

    assert [r["id"] for r in await members(directory, segment_id)] == ["C2", "C4"]


async def test_a_segment_only_sees_its_tenant(directory):
    await directory.put("/recipients/C9", headers=credentials("other"), json={"country": "FR"})
    segment_id = await segment(directory, filter={"country_in": ["FR"]})

    assert [r["id"] for r in await members(directory, segment_id)] == ["C1"]
    assert (await directory.get(f"/segments/{segment_id}", headers=credentials("other"))).status_code == 404


async def test_segments_are_created_listed_replaced_and_deleted(directory):
    first = await directory.post("/segments", headers=ACME, json={"name": "French", "filter": {"country_in": ["FR"]}})
    await directory.post("/segments", headers=ACME, json={"name": "A few", "customer_numbers": ["C1"]})
    segment_id = first.json()["id"]

    replaced = await directory.put(
        f"/segments/{segment_id}", headers=ACME, json={"name": "Swiss", "filter": {"country_in": ["CH"]}}
    )

    assert first.status_code == 201 and first.json()["filter"]["country_in"] == ["FR"]
    assert replaced.status_code == 200 and replaced.json()["name"] == "Swiss"
    assert [r["id"] for r in await members(directory, segment_id)] == ["C3"]
    listed = (await directory.get("/segments", headers=ACME)).json()
    assert [(s["name"], s["customer_numbers"]) for s in listed] == [("A few", ["C1"]), ("Swiss", None)]
    assert (await directory.delete(f"/segments/{segment_id}", headers=ACME)).status_code == 204
    assert (await directory.get(f"/segments/{segment_id}", headers=ACME)).status_code == 404
    assert (await directory.get(f"/segments/{segment_id}/recipients", headers=ACME)).status_code == 404
    assert (await directory.delete(f"/segments/{segment_id}", headers=ACME)).status_code == 404


async def test_a_segment_name_is_unique_per_tenant(directory):
    await directory.post("/segments", headers=ACME, json={"name": "French", "filter": {}})

    again = await directory.post("/segments", headers=ACME, json={"name": "French", "filter": {}})
    elsewhere = await directory.post("/segments", headers=credentials("b"), json={"name": "French", "filter": {}})

    assert again.status_code == 409
    assert again.json()["detail"][0]["loc"] == ["body", "name"]
    assert elsewhere.status_code == 201


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"filter": {"country_in": ["France"]}}, ["body", "filter", "country_in"], "two-letter country code"),
        ({"filter": {"visited_since": "last year"}}, ["body", "filter", "visited_since"], "date"),
        ({"filter": {"colour": "red"}}, ["body", "filter", "colour"], "Extra inputs are not permitted"),
        ({"filter": {"attributes": {"a.b": "x"}}}, ["body", "filter", "attributes"], "attribute names"),
        (
            {"filter": {"criteria": [{"attribute": "mileage", "op": "in", "value": "x"}]}},
            ["body", "filter", "criteria", 0],
            "'in' takes a list of texts",
        ),
        (
            {"filter": {"criteria": [{"attribute": "mileage", "op": "between", "value": 1}]}},
            ["body", "filter", "criteria", 0, "op"],
            "Input should be",
        ),
        ({"customer_numbers": ["C 1"]}, ["body", "customer_numbers", 0], "pattern"),
        ({"filter": {}, "customer_numbers": ["C1"]}, ["body"], "exactly one of filter or customer_numbers"),
        ({}, ["body"], "exactly one of filter or customer_numbers"),
    ],
)
async def test_a_bad_segment_is_refused_naming_the_field(directory, body, loc, words):
    response = await directory.post("/segments", headers=ACME, json={"name": "bad", **body})

    assert response.status_code == 422
    problem = response.json()["detail"][0]
    assert problem["loc"] == loc
    assert words in problem["msg"]
    assert (await directory.get("/segments", headers=ACME)).json() == []
