"""A recipient and a segment as the directory stores them, and as its API shows them, without a database."""

from datetime import UTC, date, datetime

from publipost_recipient_directory.domain import (
    Recipient,
    RecipientContact,
    Segment,
    SegmentDefinition,
    SegmentFilter,
)
from publipost_recipient_directory.models import RecipientIn, RecipientView, merge_record
from publipost_recipient_directory.repository import RECIPIENTS, SEGMENTS

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_a_recipient_put_over_http_is_stored_with_its_visit_day_as_midnight_utc():
    body = RecipientIn(
        email="Compta@Dupont.example",
        contacts=[{"email": "paul@dupont.example", "correspondence_types": ["Reminder"]}],
        last_visit_date=date(2024, 3, 31),
        attributes={"sector": "retail"},
    )

    recipient = body.to_recipient("acme", "C1")
    document = RECIPIENTS.dump(recipient)

    assert (recipient.tenant_id, recipient.customer_number, recipient.email) == ("acme", "C1", "Compta@dupont.example")
    assert document["last_visit_date"] == datetime(2024, 3, 31, tzinfo=UTC)
    assert document["contacts"] == [
        {"name": None, "email": "paul@dupont.example", "correspondence_types": ["reminder"]}
    ]
    assert "_id" not in document


def test_a_recipient_stored_by_an_import_without_some_columns_loads_with_the_defaults():
    stored = {
        "_id": "65f0c0ffee",
        "tenant_id": "acme",
        "customer_number": "C2",
        "document_type": "invoice",
        "email": "c2@example.test",
        "attributes": {"sector": "food"},
        "created_at": NOW,
        "updated_at": NOW,
    }

    recipient = RECIPIENTS.load(stored)

    assert (recipient.format, recipient.cc, recipient.contacts, recipient.promotional_consent) == (None, [], [], False)
    view = RecipientView.from_recipient(recipient).model_dump(mode="json")
    assert view["format"] is None and view["attributes"] == {"sector": "food"} and view["last_visit_date"] is None


def test_a_recipient_shows_its_visit_as_a_day_and_is_a_merge_record_keyed_by_customer_number():
    recipient = Recipient(
        tenant_id="acme",
        customer_number="C3",
        name="Dupont SARL",
        email="c3@example.test",
        last_visit_date=datetime(2024, 3, 31, tzinfo=UTC),
        created_at=NOW,
        updated_at=NOW,
    )

    record = merge_record(recipient)

    assert RecipientView.from_recipient(recipient).last_visit_date == date(2024, 3, 31)
    assert (record["id"], record["customer_number"], record["name"]) == ("C3", "C3", "Dupont SARL")
    assert record["last_visit_date"] == "2024-03-31" and "created_at" not in record


def test_the_contact_for_a_correspondence_type_is_the_first_receiving_it_whatever_its_case():
    recipient = Recipient(
        tenant_id="acme",
        customer_number="C4",
        contacts=[
            RecipientContact(email="paul@x.test", correspondence_types=["due_notice"]),
            RecipientContact(email="marie@x.test", correspondence_types=["reminder", "due_notice"]),
        ],
    )

    assert recipient.contact_for(" Due_Notice ").email == "paul@x.test"
    assert recipient.contact_for("reminder").email == "marie@x.test"
    assert recipient.contact_for("newsletter") is None


def test_a_segments_filter_is_stored_as_json_and_selects_as_it_did():
    definition = SegmentDefinition(filter=SegmentFilter(visited_since=date(2024, 1, 1), country_in=["fr"]))
    segment = Segment.define("s-1", "acme", "French visitors", definition, NOW)

    document = SEGMENTS.dump(segment)
    loaded = SEGMENTS.load(document)

    assert document["_id"] == "s-1" and document["customer_numbers"] is None
    assert document["filter"]["visited_since"] == "2024-01-01" and document["filter"]["country_in"] == ["FR"]
    assert loaded == segment
    assert loaded.query() == {
        "tenant_id": "acme",
        "$and": [{"country": {"$in": ["FR"]}}, {"last_visit_date": {"$gte": datetime(2024, 1, 1, tzinfo=UTC)}}],
    }


def test_a_manual_selection_selects_its_customer_numbers():
    segment = Segment.define("s-2", "acme", "Picked", SegmentDefinition(customer_numbers=["C2", "C1", "C2"]), NOW)

    assert SEGMENTS.load(SEGMENTS.dump(segment)).query() == {
        "tenant_id": "acme",
        "customer_number": {"$in": ["C1", "C2"]},
    }
