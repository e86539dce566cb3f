"""A handler runs to its end when the consuming task is cancelled under it, as aiormq cancels it when the
broker connection drops (publipost_bus.Bus): half-done work would be redone once its claim lapsed."""

import asyncio

from faststream.rabbit import TestRabbitBroker
from publipost_bus import Bus
from publipost_contracts.events import TemplateRegistered
from publipost_settings import ServiceSettings


def _event() -> TemplateRegistered:
    return TemplateRegistered(
        tenant_id="acme", correlation_id="c-1", template_id="invoice", name="Invoice", version=1, fields=["name"]
    )


async def test_a_handler_cut_from_its_consumer_still_finishes_its_work():
    bus = Bus(ServiceSettings(service_name="cut", namespace="unit"))
    began, carry_on, finished = asyncio.Event(), asyncio.Event(), []

    @bus.consumer(TemplateRegistered, idempotent=False)
    async def send(event: TemplateRegistered) -> None:
        began.set()
        await carry_on.wait()  # the SMTP server has the e-mail; its outcome is being written
        finished.append(event.template_id)

    async with TestRabbitBroker(bus.broker) as broker:
        # The in-memory broker runs the handler in the publishing task: cancelling it is the link dropping.
        publishing = broker.publish(
            bus.encode(_event()),
            exchange=bus.topology.events,
            routing_key=TemplateRegistered.routing_key,
            user_id=bus.user_id,
        )
        consuming = asyncio.create_task(publishing)
        await began.wait()
        consuming.cancel()
        await asyncio.sleep(0)
        carry_on.set()
        await bus.stop()

    assert finished == ["invoice"]
