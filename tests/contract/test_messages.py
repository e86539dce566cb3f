"""Messages: one routing key each, a complete envelope, strict parsing, nothing over 1 MB."""

import uuid

import pytest
from publipost_bus import Bus
from publipost_bus.bus import MessageTooLarge
from publipost_contracts import ALL_EVENTS, MergeCompleted, MergeRequested, RenderRequested
from publipost_settings import ServiceSettings
from pydantic import ValidationError


def test_each_message_type_has_its_own_routing_key():
    keys = [event.routing_key for event in ALL_EVENTS]
    assert len(keys) == len(set(keys))
    assert all(event.model_fields["type"].default == event.routing_key for event in ALL_EVENTS)


def test_a_message_round_trips_through_json():
    event = MergeRequested(
        tenant_id="acme", correlation_id="c-1", request_id="r-1", template_id="t-1", records=[{"id": 1, "x": "é"}]
    )
    assert MergeRequested.model_validate_json(event.model_dump_json()) == event


def test_unknown_fields_and_both_record_sources_are_refused_by_name():
    with pytest.raises(ValidationError, match="surprise"):
        MergeRequested(
            tenant_id="acme", correlation_id="c", request_id="r", template_id="t", records=[], surprise=1
        )
    with pytest.raises(ValidationError, match="exactly one of records"):
        MergeRequested(
            tenant_id="acme", correlation_id="c", request_id="r", template_id="t", records=[], records_file_id="f"
        )


def test_a_follow_up_event_keeps_tenant_and_correlation_and_names_its_cause():
    cause = MergeRequested(tenant_id="acme", correlation_id="c-9", request_id="r", template_id="t", records=[])
    follow = RenderRequested.caused_by(cause, key="chunk-0", mailing_id="m", chunk=0, documents=[])
    again = RenderRequested.caused_by(cause, key="chunk-0", mailing_id="m", chunk=0, documents=[])
    assert (follow.tenant_id, follow.correlation_id, follow.causation_id) == ("acme", "c-9", str(cause.event_id))
    assert follow.event_id == again.event_id  # a handler run twice publishes one event twice, not two events


def test_no_message_over_one_megabyte_leaves_a_service():
    bus = Bus(ServiceSettings(service_name="crm"), publishes=[MergeRequested])
    huge = MergeRequested(
        tenant_id="acme",
        correlation_id=str(uuid.uuid4()),
        request_id="r",
        template_id="t",
        records=[{"id": n, "payload": "x" * 1000} for n in range(1100)],
    )
    with pytest.raises(MessageTooLarge, match="GridFS"):
        bus.encode(huge)
    small = MergeCompleted(
        tenant_id="acme", correlation_id="c", request_id="r", mailing_id="m", name="n", status="ready",
        documents=1, failed=0,
    )
    assert len(bus.encode(small)) < 1000
