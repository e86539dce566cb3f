import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from faststream import Context
from faststream.exceptions import AckMessage
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from opentelemetry.trace import TracerProvider
from prometheus_client import REGISTRY
from publipost_contracts import MAX_MESSAGE_BYTES, Event
from publipost_idempotency import ProcessedMessages
from publipost_logging import bound_contextvars, get_logger
from publipost_settings import ServiceSettings
from publipost_telemetry import tracer_provider
from pydantic import ValidationError

from .metrics import DEAD_LETTERS, MESSAGE_AGE, MESSAGES
from .publishers import PublisherRefused, Publishers, broker_user
from .replies import Replies
from .retry import PermanentFailure, RetryPolicy
from .topology import (
    ATTEMPT_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTERED_AT_HEADER,
    PUBLISHER_HEADER,
    ROUTING_KEY_HEADER,
    Topology,
)

E = TypeVar("E", bound=Event)
R = TypeVar("R", bound=Event)
Handler = Callable[..., Awaitable[Any]]

# A handler's dependencies come through FastStream's injection: `ctx: MergeContext = Components` is the
# service's components, given by its composition root (publipost_runtime.Service) or by a unit test.
COMPONENTS = "components"
Components: Any = Context(COMPONENTS)

log = get_logger(__name__)


class MessageTooLarge(ValueError):
    pass


class Unreadable(PermanentFailure):
    """A message its consumer can never read, however often it tries: too large, of a schema version the
    consumer does not know, or not the shape of its event type."""


REASON_MAX_CHARS = 2000  # a header, not a log: the first lines of an error say what went wrong


def read_event(event_type: type[E], body: bytes) -> E:
    """The event in `body`, or Unreadable saying why not.

    The size and the schema version are checked before the body is read as `event_type`: a message over
    the limit is refused whatever it holds (the limit is the bus's, not only the publisher's), and a
    version the model does not list may use the same fields for other things.
    """
    if len(body) > MAX_MESSAGE_BYTES:
        raise Unreadable(f"{len(body)} bytes, over the {MAX_MESSAGE_BYTES}-byte limit of a message")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise Unreadable(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Unreadable("not a JSON object")
    version = data.get("schema_version", 1)
    if type(version) is not int or version not in event_type.SCHEMA_VERSIONS:
        known = ", ".join(map(str, sorted(event_type.SCHEMA_VERSIONS)))
        raise Unreadable(
            f"schema version {version!r} of {event_type.routing_key} is unknown here (this consumer reads {known})"
        )
    try:
        return event_type.model_validate(data)
    except ValidationError as exc:
        errors = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()]
        more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise Unreadable(f"not a valid {event_type.routing_key}: {'; '.join(errors[:5])}{more}") from None


class Bus:
    """A service's view of RabbitMQ: what it publishes, what it consumes, and the rules for both.

    Every consumer gets its quorum queue, dead-letter queue and retry queue;
    dead-letters at once, with the reason, a message it cannot read or whose
    publisher may not act for its tenant (publishers.py); skips
    messages it already handled (by event id); retries failures with backoff,
    a database out of reach as any other; and acknowledges only once the
    handler has returned and the message is marked handled.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        publishes: Sequence[type[Event]] = (),
        tracing: TracerProvider | None = None,
    ) -> None:
        self.service = settings.service_name
        self.topology = Topology(settings.namespace, settings.delivery_limit)
        self.retry_policy = RetryPolicy(settings.max_attempts, settings.retry_base_delay_s, settings.retry_max_delay_s)
        # Every message this service publishes names its RabbitMQ user, which the broker checks.
        self.user_id = broker_user(settings.rabbitmq_url)
        self.publishers = Publishers.of({self.user_id, *settings.bus_service_users}, settings.bus_publishers)
        self.broker = RabbitBroker(
            settings.rabbitmq_url,
            graceful_timeout=settings.shutdown_grace_s,
            default_channel=Channel(prefetch_count=settings.prefetch),
            fail_fast=False,
            log_level=logging.DEBUG,
            app_id=f"publipost-{self.service}",
            middlewares=self._middlewares(tracing or tracer_provider(settings)),
        )
        self._publishers = {
            cls: self.broker.publisher(
                exchange=self.topology.events,
                routing_key=cls.routing_key,
                persist=True,
                schema=cls,
                title=f"{cls.routing_key}:{self.service}",
                description=(cls.__doc__ or "").strip() or None,
            )
            for cls in publishes
        }
        self._queues: list[str] = []
        self._attempts: set[asyncio.Task[Any]] = set()
        self._replies = Replies(settings.rabbitmq_url, self.topology.events.name, self.user_id)
        self.grace_s = settings.shutdown_grace_s
        self.inbox: ProcessedMessages | None = None

    def _middlewares(self, tracing: TracerProvider | None) -> list[Any]:
        # Received, in process, handling time, published: faststream_* on /metrics (metrics.py says what
        # Publipost counts beside).
        middlewares: list[Any] = [RabbitPrometheusMiddleware(registry=REGISTRY, app_name=f"publipost-{self.service}")]
        if tracing is not None:
            from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware  # only with tracing on

            # Outermost, so the consumer's span covers the whole handling; it reads the publisher's trace from
            # the message's `traceparent` header and writes the current one into every message published.
            middlewares.insert(0, RabbitTelemetryMiddleware(tracer_provider=tracing))
        return middlewares

    # --- publishing ---------------------------------------------------------------

    @property
    def publishes(self) -> tuple[type[Event], ...]:
        return tuple(self._publishers)

    def encode(self, event: Event) -> bytes:
        body = event.model_dump_json().encode()
        if len(body) > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(
                f"{event.type} is {len(body)} bytes, over the {MAX_MESSAGE_BYTES}-byte limit: "
                "pass large inputs by GridFS reference"
            )
        return body

    async def publish(self, event: Event) -> None:
        publisher = self._publishers.get(type(event))
        if publisher is None:
            raise LookupError(f"{self.service} does not declare that it publishes {event.type}")
        await publisher.publish(
            self.encode(event),
            message_id=str(event.event_id),
            correlation_id=event.correlation_id,
            content_type="application/json",
            message_type=event.type,
            user_id=self.user_id,
        )

    async def request(self, event: Event, reply_type: type[R], timeout_s: float = 5.0) -> R:
        """Request/reply over the events exchange (the consumer's return value is the answer), as many in
        flight at once as callers ask (replies.py); TimeoutError when no answer comes in time."""
        return await self._replies.ask(self.encode(event), event, reply_type, timeout_s)

    # --- consuming ----------------------------------------------------------------

    def provide(self, components: Any) -> None:
        """What every handler's `Components` parameter receives."""
        self.broker.context.set_global(COMPONENTS, components)

    @property
    def components(self) -> Any:
        """What was provided: for work a handler starts that outlives it (a check run a moment later)."""
        return self.broker.context.get(COMPONENTS)

    def consumer(self, event_type: type[E], *, idempotent: bool = True) -> Callable[[Handler], Handler]:
        """Register `handler` for `event_type` on this service's own queue.

        `idempotent=False` is for queries (request/reply), which change nothing.
        """

        def register(handler: Handler) -> Handler:
            queue = self.topology.consumer_queue(self.service, event_type.routing_key)
            self._queues.append(queue.name)

            async def consume(event: Any, message: Any, **dependencies: Any) -> Any:
                return await self._consume(queue.name, partial(handler, **dependencies), event, message, idempotent)

            async def decode(message: Any) -> E:
                # Before the handler and the database: a message that can never be read, or that its
                # publisher may not send, goes to the dead-letter queue now, saying why, instead of failing
                # every retry the same way (or being handled for a tenant its publisher does not serve).
                try:
                    event = read_event(event_type, message.body)
                    names_requester = getattr(event, "requested_by", None) is not None
                    self.publishers.check(message.raw_message.user_id, event.tenant_id, names_requester=names_requester)
                    return event
                except (Unreadable, PublisherRefused) as refusal:
                    await self._dead_letter(queue.name, event_type.routing_key, message, refusal)
                    raise AckMessage() from None

            consume.__signature__ = _consumer_signature(event_type, handler)  # type: ignore[attr-defined]
            consume.__name__ = handler.__name__
            consume.__doc__ = handler.__doc__
            self.broker.subscriber(
                queue,
                self.topology.events,
                ack_policy=AckPolicy.REJECT_ON_ERROR,
                decoder=decode,
                title=f"{queue.name}:consume",
                description=inspect.getdoc(handler),
            )(consume)
            return handler

        return register

    async def _consume(
        self, queue: str, handler: Callable[[E], Awaitable[Any]], event: E, message: Any, idempotent: bool
    ) -> Any:
        """The attempt, run to its end even when the broker link drops under it.

        aiormq cancels the consuming task when its connection closes; a handler cut there would leave its
        work half done (an e-mail the SMTP server has, still claimed and unrecorded, sent again once its
        lease lapses). The attempt runs in a task of its own that the cancellation does not reach: it
        records its outcome, and the message, unacknowledged, comes back to find the work done.
        """
        attempt = asyncio.create_task(self._attempt_once(queue, handler, event, message, idempotent))
        self._attempts.add(attempt)
        attempt.add_done_callback(self._attempt_done)
        return await asyncio.shield(attempt)

    def _attempt_done(self, attempt: "asyncio.Task[Any]") -> None:
        self._attempts.discard(attempt)
        if not attempt.cancelled() and (error := attempt.exception()) is not None:
            # Only the retry's own publish can fail here (broker gone): the message is redelivered anyway.
            log.warning("attempt ended without its retry scheduled", error=repr(error))

    async def _attempt_once(
        self, queue: str, handler: Callable[[E], Awaitable[Any]], event: E, message: Any, idempotent: bool
    ) -> Any:
        """One attempt: the duplicate check, the handler, the mark. A failure in any of them, a database out
        of reach included, goes through the retry policy; a handler run again after its mark failed changes
        nothing twice, as its writes have deterministic keys."""
        event_id = str(event.event_id)
        MESSAGE_AGE.labels(queue).observe(age_s(event))
        with bound_contextvars(
            correlation_id=event.correlation_id,
            event_id=event_id,
            event_type=event.type,
            tenant_id=event.tenant_id,
            **subject_ids(event),
        ):
            try:
                if idempotent and self.inbox and await self.inbox.already_processed(queue, event_id):
                    MESSAGES.labels(queue, "duplicate").inc()
                    log.info("duplicate message skipped", consumer=queue)
                    return None
                result = await handler(event)
                if idempotent and self.inbox:
                    await self.inbox.mark(queue, event_id)
            except Exception as error:  # noqa: BLE001 - every failure goes through the retry policy
                await self._failed(queue, event.type, message, error)
                return None
            MESSAGES.labels(queue, "handled").inc()
            return result

    @staticmethod
    def _attempt(message: Any) -> int:
        return int((message.headers or {}).get(ATTEMPT_HEADER, 0)) + 1

    async def _failed(self, queue: str, routing_key: str, message: Any, error: Exception) -> None:
        attempt = self._attempt(message)
        if not self.retry_policy.should_retry(attempt, error):
            await self._dead_letter(queue, routing_key, message, error)
            return
        delay = self.retry_policy.delay_s(attempt)
        await self._schedule_retry(queue, message, attempt, delay)
        MESSAGES.labels(queue, "retried").inc()
        log.warning("message retried", consumer=queue, attempt=attempt, delay_s=delay, error=repr(error))

    async def _schedule_retry(self, queue: str, message: Any, attempt: int, delay_s: float) -> None:
        await self.broker.publish(
            message.body,
            exchange=self.topology.retry,
            routing_key=queue,
            persist=True,
            expiration=delay_s,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            content_type=message.content_type,
            headers={**self._publisher_header(message), ATTEMPT_HEADER: attempt},
            user_id=self.user_id,
        )

    def _publisher_header(self, message: Any) -> dict[str, Any]:
        """The message's headers, naming who first published it: a retried or dead-lettered copy is
        published by this service, so its own user_id is ours (the header of a copy that comes back from
        the retry queue is kept; an outsider's is replaced by what the broker checked)."""
        headers = dict(message.headers or {})
        user_id = getattr(message.raw_message, "user_id", None)
        if user_id and (PUBLISHER_HEADER not in headers or user_id not in self.publishers.service_users):
            headers[PUBLISHER_HEADER] = user_id
        return headers

    async def _dead_letter(self, queue: str, routing_key: str, message: Any, error: Exception) -> None:
        """Into `<queue>.dlq` with the reason; the caller then acknowledges the message. Should this publish
        fail, the message is rejected instead and the broker dead-letters it (reason in `x-death`)."""
        attempt = self._attempt(message)
        if isinstance(error, Unreadable):
            kind, reason = "unreadable", f"unreadable: {error}"
        elif isinstance(error, PublisherRefused):
            kind, reason = "publisher_refused", f"publisher refused: {error}"
        elif isinstance(error, PermanentFailure):
            kind, reason = "permanent_failure", f"permanent failure: {error}"
        else:
            kind, reason = "retries_exhausted", f"failed {attempt} times, last: {error!r}"
        await self.broker.publish(
            message.body,
            exchange=self.topology.dead_letter,
            routing_key=queue,
            persist=True,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            content_type=message.content_type,
            headers={
                **self._publisher_header(message),
                ATTEMPT_HEADER: attempt,
                DEAD_LETTER_REASON_HEADER: reason[:REASON_MAX_CHARS],
                DEAD_LETTERED_AT_HEADER: datetime.now(UTC).isoformat(),
                ROUTING_KEY_HEADER: routing_key,
            },
            user_id=self.user_id,
        )
        MESSAGES.labels(queue, "dead_lettered").inc()
        DEAD_LETTERS.labels(queue, kind).inc()
        log.error("message dead-lettered", consumer=queue, attempt=attempt, reason=reason[:REASON_MAX_CHARS])

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.connect()
        retry_exchange = await self.broker.declare_exchange(self.topology.retry)
        dead_letter_exchange = await self.broker.declare_exchange(self.topology.dead_letter)
        for name in self._queues:
            dlq = self.topology.dead_letter_queue(name)
            await (await self.broker.declare_queue(dlq)).bind(dead_letter_exchange, routing_key=name)
            retry = self.topology.retry_queue(name)
            await (await self.broker.declare_queue(retry)).bind(retry_exchange, routing_key=name)
        await self.broker.start()

    async def waiting(self, event_type: type[Event]) -> int:
        """How many messages of `event_type` wait in this service's queue and its retry queue (taken but not
        yet acknowledged ones are not counted): none, while work is known to be missing, means it was lost."""
        name = self.topology.queue_name(self.service, event_type.routing_key)
        total = 0
        for queue in (
            self.topology.consumer_queue(self.service, event_type.routing_key),
            self.topology.retry_queue(name),
        ):
            declared = await self.broker.declare_queue(queue)
            total += (await declared.declare()).message_count  # declared again: the count of now
        return total

    def queue_names(self) -> list[str]:
        """Every queue this service declares: consumer queues and their retry and dead-letter queues."""
        return [name for queue in self._queues for name in (queue, f"{queue}.retry", f"{queue}.dlq")]

    async def stop(self) -> None:
        """Stop consuming and wait for in-flight handlers (up to the grace period), then disconnect."""
        started = time.monotonic()
        await self.broker.stop()
        # Attempts whose consuming task was cancelled (a broker link that dropped) still count as in flight.
        if self._attempts:
            await asyncio.wait(self._attempts, timeout=max(self.grace_s - (time.monotonic() - started), 0.1))
        await self._replies.close()

    async def ping(self, timeout_s: float = 0.8) -> bool:
        """Whether the broker connection is up, waiting at most `timeout_s` (within a probe's 1 s)."""
        try:
            return await self.broker.ping(timeout=timeout_s)
        except Exception:  # noqa: BLE001 - readiness answers a yes/no, whatever the cause
            return False


def age_s(event: Event) -> float:
    """Seconds since the event occurred, as its publisher said (a time without zone is UTC; never negative
    across clock skew)."""
    occurred_at = event.occurred_at if event.occurred_at.tzinfo else event.occurred_at.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - occurred_at).total_seconds())


SUBJECT_IDS = {
    "mailing_id": "mailing_id",
    "source_mailing_id": "mailing_id",  # merge.mailing_regrouped is about the mailing it replaces
    "dispatch_id": "dispatch_id",
    "email_id": "dispatch_id",  # emails.requested: the id of the dispatch it becomes
    "campaign_id": "campaign_id",
}


def subject_ids(event: Event) -> dict[str, str]:
    """The ids of what a message is about, when its event names them: every log line of its handling carries
    them, so one mailing's or one dispatch's lines can be found across services."""
    ids: dict[str, str] = {}
    for field, key in SUBJECT_IDS.items():
        if key not in ids and (value := getattr(event, field, None)) is not None:
            ids[key] = str(value)
    return ids


def _consumer_signature(event_type: type[Event], handler: Handler) -> inspect.Signature:
    """What FastStream reads to call a consumer: the event, the message, and the handler's own dependencies
    (every parameter after the event, `ctx: MergeContext = Components` for instance), which it injects."""
    dependencies = list(inspect.signature(handler).parameters.values())[1:]
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature(
        [
            inspect.Parameter("event", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=event_type),
            inspect.Parameter("message", keyword, annotation=RabbitMessage),
            *(parameter.replace(kind=keyword) for parameter in dependencies),
        ],
        return_annotation=Any,
    )
