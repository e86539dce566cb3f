"""Helpers for tests: waiting on an eventual outcome, and listening to the bus as an outside system would."""

import asyncio
import json
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import aio_pika

from publipost_contracts import Event

E = TypeVar("E", bound=Event)


async def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll `predicate` (sync or async) until it returns a truthy value; fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


class EventTap:
    """Binds a private queue to the events exchange and collects the events of the given types."""

    def __init__(self, rabbitmq_url: str, namespace: str, *event_types: type[Event]) -> None:
        self._url = rabbitmq_url
        self._exchange = f"{namespace}.events"
        self._types = {cls.routing_key: cls for cls in event_types}
        self.received: list[Event] = []
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> "EventTap":
        self._connection = await aio_pika.connect_robust(self._url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(self._exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        for routing_key in self._types:
            await queue.bind(exchange, routing_key=routing_key)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        body = json.loads(message.body)
        self.received.append(self._types[body["type"]].model_validate(body))
        self._arrived.set()

    def of(self, event_type: type[E]) -> list[E]:
        """Events of that type, each id once (copies of a re-published event count once)."""
        unique: dict[Any, E] = {}
        for event in self.received:
            if isinstance(event, event_type):
                unique.setdefault(event.event_id, event)
        return list(unique.values())

    async def next(self, event_type: type[E], where: Callable[[E], bool] = lambda e: True, timeout: float = 30) -> E:
        async def found() -> E | None:
            return next((e for e in self.of(event_type) if where(e)), None)

        return await wait_until(found, timeout=timeout, interval=0.05)

    async def __aexit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        if self._connection is not None:
            await self._connection.close()
