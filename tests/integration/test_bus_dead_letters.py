"""Messages a consumer can never handle go to its dead-letter queue at once, saying why; the `dlq` command
lists, shows, replays and purges them, against the real RabbitMQ."""

import asyncio
import json
import os
import sys
from typing import Any, Literal

import aio_pika
import pytest
from publipost_bus import Bus, PermanentFailure, broker_user
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
            json.dumps(body).encode(),
            message_id=body["event_id"],
            content_type="application/json",
            user_id=broker_user(infra.rabbitmq_url),  # who publishes, as every publisher says (publipost_bus)
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


async def dlq(infra, namespace: str, *args: str) -> str:
    """`python -m publipost_bus.dlq ARGS`, as an SRE runs it; its standard output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "publipost_bus.dlq", *args,
        env={**os.environ, "RABBITMQ_URL": infra.rabbitmq_url, "PUBLIPOST_NAMESPACE": namespace},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


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


async def test_dlq_lists_shows_and_replays_a_message_which_is_processed_once_though_replayed_twice(
    probe, infra, namespace
):
    attempts: list[str] = []
    processed: list[str] = []

    async def handler(event: Probe) -> None:
        attempts.append(str(event.event_id))
        if len(attempts) == 1:
            raise PermanentFailure("template 42 does not exist yet")
        processed.append(str(event.event_id))

    service = await probe(handler)
    body = probe_body(note="replay me")
    await publish_raw(infra, namespace, body)
    await wait_until(lambda: _has(infra, service.queue, 1), timeout=30)

    listing = await dlq(infra, namespace, "list", "--queue", service.queue)
    assert [line.split() for line in listing.splitlines() if service.queue in line] == [[f"{service.queue}.dlq", "1"]]

    shown = [json.loads(line) for line in (await dlq(infra, namespace, "show", service.queue, "--json")).splitlines()]
    assert len(shown) == 1
    assert shown[0]["message_id"] == body["event_id"]
    assert "template 42 does not exist yet" in shown[0]["reason"]
    assert shown[0]["headers"][REASON] == shown[0]["reason"]
    assert shown[0]["body"]["note"] == "replay me"
    human = await dlq(infra, namespace, "show", service.queue)
    assert body["event_id"] in human and "template 42 does not exist yet" in human and "replay me" in human
    assert await count(infra, service.queue) == 1  # showing takes nothing away

    # A copy goes back to the consumer and the message stays for the record...
    await dlq(infra, namespace, "replay", service.queue, "--message-id", body["event_id"], "--keep")
    await wait_until(lambda: processed, timeout=30)
    assert await count(infra, service.queue) == 1
    # ...then it is replayed again, and leaves the dead-letter queue: the consumer skips the copy it has handled.
    await dlq(infra, namespace, "replay", service.queue, "--all")
    await wait_until(lambda: _has_exactly(infra, service.queue, 0), timeout=30)
    await asyncio.sleep(1.5)
    assert processed == [body["event_id"]]
    assert attempts == [body["event_id"]] * 2  # the failed try and the replay; the second replay was a duplicate
    assert f"{service.queue}.dlq 0" in " ".join((await dlq(infra, namespace, "list", "--queue", service.queue)).split())


async def _has_exactly(infra, queue: str, n: int) -> bool:
    return await count(infra, queue) == n


async def test_dlq_purges_one_message_or_a_whole_queue(probe, infra, namespace):
    async def handler(event: Probe) -> None:
        raise PermanentFailure("never")

    service = await probe(handler)
    bodies = [probe_body(note=str(n)) for n in range(3)]
    for body in bodies:
        await publish_raw(infra, namespace, body)
    await wait_until(lambda: _has(infra, service.queue, 3), timeout=30)

    await dlq(infra, namespace, "purge", service.queue, "--message-id", bodies[1]["event_id"])
    assert sorted(m.message_id for m in await dead_letters(infra, service.queue)) == sorted(
        [bodies[0]["event_id"], bodies[2]["event_id"]]
    )
    await dlq(infra, namespace, "purge", service.queue, "--all")
    assert await count(infra, service.queue) == 0


def test_dlq_knows_every_consumer_queue_of_the_product():
    from publipost_bus.dlq import consumer_queues

    queues = consumer_queues("acme-stack")
    assert "acme-stack.merge.merge.requested" in queues
    assert "acme-stack.dispatch.send.requested" in queues
    assert all(q.startswith("acme-stack.") for q in queues)
    assert len(queues) == len(set(queues)) >= 8

