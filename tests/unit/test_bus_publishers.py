"""Who may publish for which tenant on the bus (publipost_bus.publishers), by the RabbitMQ user a message names."""

import pytest
from publipost_bus import PublisherRefused, Publishers, broker_user

PUBLISHERS = Publishers.of({"publipost-merge", "publipost-scheduler"}, {"crm": ["acme", "globex"], "billing": ["acme"]})


def test_a_service_publishes_for_every_tenant_and_a_system_for_its_own():
    PUBLISHERS.check("publipost-scheduler", "initech")
    PUBLISHERS.check("crm", "globex")
    PUBLISHERS.check("billing", "acme")


@pytest.mark.parametrize(
    ("user_id", "tenant", "reason"),
    [
        ("billing", "globex", "RabbitMQ user 'billing' may not publish for tenant 'globex' (its tenants: 'acme')"),
        ("intruder", "acme", "RabbitMQ user 'intruder' is not a Publipost service and not an integrating system known here"),
        (None, "acme", "the message does not name its publisher (no user_id property)"),
        ("", "acme", "the message does not name its publisher (no user_id property)"),
    ],
)
def test_anything_else_is_refused_saying_why(user_id, tenant, reason):
    with pytest.raises(PublisherRefused) as refused:
        PUBLISHERS.check(user_id, tenant)
    assert str(refused.value).startswith(reason)


def test_the_user_of_a_connection_is_read_from_its_url():
    assert broker_user("amqp://publipost-merge:s3cret@rabbitmq:5672/") == "publipost-merge"
    assert broker_user("amqps://crm%40acme:x@rabbitmq/vhost") == "crm@acme"
    assert broker_user("amqp://127.0.0.1:5672/") == "guest"  # what the AMQP clients connect as


def test_only_a_service_names_the_person_who_asked():
    PUBLISHERS.check("publipost-scheduler", "acme", names_requester=True)
    with pytest.raises(PublisherRefused) as refused:
        PUBLISHERS.check("crm", "acme", names_requester=True)
    assert "may not name who asked (requested_by)" in str(refused.value)
