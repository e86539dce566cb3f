"""A segment's filter becomes one MongoDB query over the tenant's recipients."""

from datetime import UTC, date, datetime

import pytest
from publipost_recipient_directory.domain import SegmentDefinition, SegmentFilter, segment_query
from pydantic import ValidationError


def query(**conditions: object) -> dict:
    return segment_query("acme", SegmentDefinition(filter=SegmentFilter(**conditions)))


def test_an_empty_filter_is_the_whole_tenant():
    assert query() == {"tenant_id": "acme"}


@pytest.mark.parametrize(
    ("conditions", "clauses"),
    [
        ({"country_in": ["fr", "BE"]}, [{"country": {"$in": ["FR", "BE"]}}]),
        ({"country_not_in": ["FR"]}, [{"country": {"$nin": ["FR"]}}]),
        ({"has_email": True}, [{"email": {"$ne": None}}]),
        ({"has_email": False}, [{"email": None}]),
        ({"has_phone": True}, [{"phone": {"$ne": None}}]),
        (
            {"has_postal_address": True},
            [{"postal_address": {"$ne": None}}, {"postal_code": {"$ne": None}}, {"locality": {"$ne": None}}],
        ),
        (
            {"has_postal_address": False},
            [{"$or": [{"postal_address": None}, {"postal_code": None}, {"locality": None}]}],
        ),
        ({"visited_since": date(2024, 1, 1)}, [{"last_visit_date": {"$gte": datetime(2024, 1, 1, tzinfo=UTC)}}]),
        (
            {"not_visited_since": date(2024, 1, 1)},
            [{"$or": [{"last_visit_date": {"$lt": datetime(2024, 1, 1, tzinfo=UTC)}}, {"last_visit_date": None}]}],
        ),
        ({"opted_in": True}, [{"promotional_consent": True}]),
        ({"opted_in": False}, [{"promotional_consent": {"$ne": True}}]),
        ({"family": ["company"]}, [{"family": {"$in": ["company"]}}]),
        ({"type": ["prospect"]}, [{"type": {"$in": ["prospect"]}}]),
        ({"postal_code": ["75002"]}, [{"postal_code": {"$in": ["75002"]}}]),
        ({"locality": ["Paris"]}, [{"locality": {"$in": ["Paris"]}}]),
        ({"document_type": ["invoice"]}, [{"document_type": {"$in": ["invoice"]}}]),
        ({"attributes": {"sector": "retail"}}, [{"attributes.sector": "retail"}]),
    ],
)
def test_each_condition_becomes_one_clause(conditions, clauses):
    assert query(**conditions) == {"tenant_id": "acme", "$and": clauses}


def test_conditions_combine_so_that_all_must_hold():
    assert query(has_email=False, has_phone=True, opted_in=True) == {
        "tenant_id": "acme",
        "$and": [{"email": None}, {"phone": {"$ne": None}}, {"promotional_consent": True}],
    }


def test_a_manual_selection_is_its_customer_numbers_once_each():
    definition = SegmentDefinition(customer_numbers=["C2", "C1", "C2"])

    assert segment_query("acme", definition) == {"tenant_id": "acme", "customer_number": {"$in": ["C1", "C2"]}}


def test_a_segment_is_a_filter_or_a_selection_not_both():
    for bad in ({}, {"filter": {}, "customer_numbers": []}):
        with pytest.raises(ValidationError, match="exactly one of filter or customer_numbers"):
            SegmentDefinition.model_validate(bad)
