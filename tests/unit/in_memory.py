"""A service as its composition root builds it (app.build: every consumer, the same topology), with its
components replaced by in-memory fakes through FastStream's injection and the broker by TestRabbitBroker:
handler rules run end to end in milliseconds, without RabbitMQ or a database."""

import dataclasses
from collections import defaultdict
from typing import Any, Self, TypeVar

from faststream.rabbit import RabbitQueue, TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from publipost_contracts import Event
from publipost_runtime import Service

from tests.unit.fakes.storage import FakeInbox

E = TypeVar("E", bound=Event)


class InMemoryService:
    def __init__(self, service: Service, **fakes: Any) -> None:
        self.service = service
        self.bus = service.bus
        self.ctx = dataclasses.replace(service.components, **fakes)
        self.bus.provide(self.ctx)
        self.bus.inbox = FakeInbox()
        self._published: dict[type[Event], list[Event]] = defaultdict(list)
        for event_type in self.bus.publishes:
            self._listen(event_type)
        self._testing = TestRabbitBroker(self.bus.broker)

    def _listen(self, event_type: type[Event]) -> None:
        async def published(message: RabbitMessage) -> None:
            self._published[event_type].append(event_type.model_validate_json(message.body))

        queue = RabbitQueue(f"in-memory-{event_type.routing_key}", routing_key=event_type.routing_key)
        self.bus.broker.subscriber(queue, self.bus.topology.events)(published)

    async def __aenter__(self) -> Self:
        await self._testing.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._testing.__aexit__(*exc)

    async def deliver(self, event: Event) -> None:
        """The event as RabbitMQ would hand it to the service's consumer (published by a Publipost service)."""
        await self.bus.broker.publish(
            self.bus.encode(event),
            exchange=self.bus.topology.events,
            routing_key=event.routing_key,
            message_id=str(event.event_id),
            correlation_id=event.correlation_id,
            content_type="application/json",
            user_id=self.bus.user_id,
        )

    def published(self, event_type: type[E]) -> list[E]:
        return list(self._published[event_type])  # type: ignore[arg-type]
