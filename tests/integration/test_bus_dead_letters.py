"""Messages a consumer can never handle go to its dead-letter queue at once, saying why, against the real
RabbitMQ."""

import json
from typing import Any, Literal

import aio_pika
import pytest
from publipost_bus import Bus
from publipost_contracts import Event
from publipost_runtime import Service
from publipost_settings import ServiceSettings
from publipost_storage import Storage

from tests.support import wait_until

REASON = "x-publipost-dead-letter-reason"


class Probe(Event):
    type: Literal["test.dead-letter-probe"] = "test.dead-letter-probe"
    note: str = ""


@pytest.fixture
def probe(make_settings, running):
    """A started service consuming Probe with `handler`; its consumer queue is `service.queue`."""

    async def start(handler) -> Service:
        settings = make_settings(ServiceSettings, service_name="probe", query_log=None)
        bus = Bus(settings)
        bus.consumer(Probe)(handler)
        service = await running(Service(settings=settings, bus=bus, storage=Storage.for_service(settings)))
        service.queue = bus.queue_names()[0]
        return service

    return start


async def publish_raw(infra, namespace: str, body: dict[str, Any]) -> None:
    """As an outside system would: any body, any size, no check on the way."""
    connection = await aio_pika.connect(infra.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{namespace}.events")
        message = aio_pika.Message(
            json.dumps(body).encode(), message_id=body["event_id"], content_type="application/json"
        )
        await exchange.publish(message, routing_key=Probe.routing_key)


def probe_body(**changes: Any) -> dict[str, Any]:
    return {**json.loads(Probe(tenant_id="acme", correlation_id="dlq").model_dump_json()), **changes}


async def dead_letters(infra, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """The messages of `queue`'s dead-letter queue, left in it."""
    connection = await aio_pika.connect(infra.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.declare_queue(f"{queue}.dlq", passive=True)
        messages = []
        while (message := await dlq.get(no_ack=False, fail=False)) is not None:
            messages.append(message)
        await channel.close()  # unacknowledged: they stay in the queue
        return messages


async def count(infra, queue: str) -> int:
    return len(await dead_letters(infra, queue))


async def test_an_oversized_message_and_unknown_schema_versions_are_dead_lettered_at_once_with_the_reason(
    probe, infra, namespace
):
    handled: list[Probe] = []

    async def handler(event: Probe) -> None:
        handled.append(event)

    service = await probe(handler)
    oversized = probe_body(note="x" * 2_000_000)
    version_99 = probe_body(schema_version=99)
    version_minus_1 = probe_body(schema_version=-1)
    # A future version's message also has fields this consumer does not know: refused for its version.
    version_2 = probe_body(schema_version=2, priority="high")
    for body in (oversized, version_99, version_minus_1, version_2):
        await publish_raw(infra, namespace, body)

    await wait_until(lambda: _has(infra, service.queue, 4), timeout=30)
    reasons = {m.message_id: m.headers for m in await dead_letters(infra, service.queue)}
    assert "over the 1000000-byte limit" in reasons[oversized["event_id"]][REASON]
    assert "schema version 99" in reasons[version_99["event_id"]][REASON]
    assert "schema version -1" in reasons[version_minus_1["event_id"]][REASON]
    assert "schema version 2" in reasons[version_2["event_id"]][REASON]
    assert all(headers["x-publipost-attempt"] == 1 for headers in reasons.values())  # never retried
    assert handled == []

    good = probe_body()
    await publish_raw(infra, namespace, good)
    await wait_until(lambda: handled, timeout=30)  # the queue goes on
    assert [str(e.event_id) for e in handled] == [good["event_id"]]
    assert await count(infra, service.queue) == 4


async def _has(infra, queue: str, n: int) -> bool:
    return await count(infra, queue) >= n
