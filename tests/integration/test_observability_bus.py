"""A message's trace and log context over the real broker (issue 19, point 5): the consumer's span continues
the publisher's trace (its context travels in the AMQP headers), and every log line of the handling names
the tenant and what the message is about, with the trace it belongs to."""

import uuid

import aio_pika
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from publipost_bus import Bus, Components, PermanentFailure
from publipost_contracts import DispatchRequested
from publipost_logging import add_trace_ids, get_logger
from publipost_settings import ServiceSettings
from publipost_storage import Storage
from publipost_telemetry import MongoSpans

from tests.support import wait_until

log = get_logger("test.handler")


async def dispatch_requested(event: DispatchRequested, seen: list = Components) -> None:
    """Log a line, as a handler does, and note the trace it runs in."""
    log.info("handling the request")
    seen.append(trace.get_current_span().get_span_context().trace_id)


def _tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def _delete_queues(infra, bus: Bus) -> None:
    connection = await aio_pika.connect(infra.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        for name in bus.queue_names():
            await channel.queue_delete(name)


def _request() -> DispatchRequested:
    return DispatchRequested(
        tenant_id="acme",
        correlation_id=str(uuid.uuid4()),
        dispatch_id=str(uuid.uuid4()),
        mailing_id=str(uuid.uuid4()),
        subject="Invoice {document_number}",
        body="Attached.",
    )


async def test_the_consumer_continues_the_publisher_trace_and_its_log_lines_name_tenant_mailing_and_trace(
    infra, namespace
):
    provider, exporter = _tracing()
    settings = ServiceSettings(service_name="dispatch", namespace=namespace, rabbitmq_url=infra.rabbitmq_url)
    bus = Bus(settings, publishes=[DispatchRequested], tracing=provider)
    bus.consumer(DispatchRequested)(dispatch_requested)
    seen: list[int] = []
    bus.provide(seen)
    request = _request()

    await bus.start()
    try:
        with structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars, add_trace_ids]
        ) as lines:
            with provider.get_tracer("test").start_as_current_span("an HTTP call asking for the dispatch") as caller:
                await bus.publish(request)
            await wait_until(lambda: seen, timeout=15)
    finally:
        await bus.stop()
        await _delete_queues(infra, bus)

    trace_id = caller.get_span_context().trace_id
    assert seen == [trace_id]  # the handler ran inside the publisher's trace
    spans = exporter.get_finished_spans()
    consumer = [s for s in spans if s.kind is SpanKind.CONSUMER and s.name.endswith("process")]
    producer = [s for s in spans if s.kind is SpanKind.PRODUCER]
    assert consumer and producer, [(s.name, s.kind) for s in spans]
    assert {s.context.trace_id for s in consumer + producer} == {trace_id}
    assert consumer[0].parent is not None and consumer[0].parent.span_id == producer[0].context.span_id

    handled = [line for line in lines if line["event"] == "handling the request"]
    assert len(handled) == 1
    line = handled[0]
    assert (line["tenant_id"], line["mailing_id"], line["dispatch_id"]) == (
        "acme",
        request.mailing_id,
        request.dispatch_id,
    )
    assert line["correlation_id"] == request.correlation_id
    assert line["trace_id"] == format(trace_id, "032x") and len(line["span_id"]) == 16


async def test_a_dead_lettered_message_is_counted_by_queue_and_reason_and_its_age_observed(infra, namespace):
    settings = ServiceSettings(service_name="dispatch", namespace=namespace, rabbitmq_url=infra.rabbitmq_url)
    bus = Bus(settings, publishes=[DispatchRequested])
    tried: list[str] = []

    async def refuse(event: DispatchRequested) -> None:
        tried.append(event.dispatch_id)
        raise PermanentFailure("no such mailing")

    bus.consumer(DispatchRequested)(refuse)
    queue = bus.topology.queue_name("dispatch", DispatchRequested.routing_key)
    dead = {"queue": queue, "reason": "permanent_failure"}
    aged = {"consumer": queue}
    await bus.start()
    try:
        await bus.publish(_request())
        await wait_until(lambda: REGISTRY.get_sample_value("publipost_dead_lettered_messages_total", dead), timeout=15)
    finally:
        await bus.stop()
        await _delete_queues(infra, bus)
    assert len(tried) == 1
    assert REGISTRY.get_sample_value("publipost_dead_lettered_messages_total", dead) == 1
    assert REGISTRY.get_sample_value("publipost_message_age_seconds_count", aged) == 1
    assert REGISTRY.get_sample_value("publipost_message_age_seconds_sum", aged) < 15


async def test_each_database_command_is_a_client_span_of_the_work_that_sent_it(infra, namespace):
    provider, exporter = _tracing()
    storage = Storage(
        infra.mongodb_url, f"{namespace}_traced", f"{namespace}_blobs", event_listeners=[MongoSpans(provider)]
    )
    try:
        with provider.get_tracer("test").start_as_current_span("handling a message") as handling:
            await storage.db["mailings"].find_one({"_id": "m-1", "secret": "not-recorded"})
    finally:
        await storage.client.drop_database(f"{namespace}_traced")
        await storage.close()

    (find,) = [s for s in exporter.get_finished_spans() if s.name == "find mailings"]
    assert find.kind is SpanKind.CLIENT and find.parent.span_id == handling.get_span_context().span_id
    assert find.attributes["db.system.name"] == "mongodb" and find.attributes["db.collection.name"] == "mailings"
    assert "not-recorded" not in repr(dict(find.attributes))
