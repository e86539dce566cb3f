"""A handler's dependencies come through FastStream's injection (publipost_bus.Components): the composition
root provides them once, and a unit test provides fakes the same way, with TestRabbitBroker for the broker."""

from dataclasses import dataclass, field
from uuid import uuid4

from faststream.rabbit import TestRabbitBroker
from publipost_bus import Bus, Components
from publipost_contracts import MailingRegrouped
from publipost_settings import ServiceSettings


@dataclass
class Seen:
    mailings: list[str] = field(default_factory=list)


async def mailing_regrouped(event: MailingRegrouped, seen: Seen = Components) -> None:
    """Note the regrouped mailing."""
    seen.mailings.append(event.source_mailing_id)


def _event() -> MailingRegrouped:
    return MailingRegrouped(
        tenant_id="acme",
        correlation_id="c-1",
        source_mailing_id=str(uuid4()),
        dispatch_id=str(uuid4()),
        sent_mailing_id=None,
        not_sent_mailing_id=None,
        sent=0,
        not_sent=0,
    )


async def test_a_handler_receives_the_components_its_service_provides():
    bus = Bus(ServiceSettings(service_name="merge"), publishes=[MailingRegrouped])
    bus.consumer(MailingRegrouped)(mailing_regrouped)
    seen = Seen()
    bus.provide(seen)
    event = _event()

    async with TestRabbitBroker(bus.broker):
        await bus.publish(event)

    assert seen.mailings == [event.source_mailing_id]

