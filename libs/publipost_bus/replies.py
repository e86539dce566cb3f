"""Request/reply over the events exchange, many requests in flight at once.

FastStream's own request takes a lock per process and subscribes to the reply queue anew for each request:
a service could ask one question at a time, a few dozen a second. Here one channel consumes RabbitMQ's
direct reply-to once, and each answer is matched to its request by the answer's `causation_id` (the
request's event id, as every follow-up event carries it).
"""

import asyncio
import json
from typing import Any, TypeVar

import aio_pika
from publipost_contracts import Event

R = TypeVar("R", bound=Event)
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class Replies:
    """The requests of one service and the answers they wait for, on a connection of their own (direct
    reply-to answers only on the channel that published the request), opened at the first request."""

    def __init__(self, url: str, exchange: str, user_id: str) -> None:
        self._url = url
        self._exchange_name = exchange
        self._user_id = user_id
        self._waiting: dict[str, tuple[asyncio.Future[Any], type[Event]]] = {}
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._opening = asyncio.Lock()

    async def _opened(self) -> aio_pika.abc.AbstractExchange:
        async with self._opening:
            if self._exchange is None:
                self._connection = await aio_pika.connect_robust(self._url)
                channel = await self._connection.channel(publisher_confirms=False)
                replies = await channel.declare_queue(DIRECT_REPLY_TO, passive=True)
                await replies.consume(self._on_reply, no_ack=True)
                self._exchange = await channel.declare_exchange(
                    self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                )
            return self._exchange

    async def ask(self, body: bytes, request: Event, reply_type: type[R], timeout_s: float) -> R:
        """Publish `request` (already encoded as `body`) and wait for its answer; TimeoutError if none."""
        exchange = await self._opened()
        key = str(request.event_id)
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting[key] = (answer, reply_type)
        try:
            await exchange.publish(
                aio_pika.Message(
                    body,
                    content_type="application/json",
                    message_id=key,
                    correlation_id=request.correlation_id,
                    reply_to=DIRECT_REPLY_TO,
                    type=request.type,
                    user_id=self._user_id,  # the consumer checks who publishes (publishers.py)
                ),
                routing_key=request.routing_key,
            )
            return await asyncio.wait_for(answer, timeout_s)
        finally:
            self._waiting.pop(key, None)

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            causation = json.loads(message.body).get("causation_id")
        except (ValueError, AttributeError):
            return  # not an answer of ours: nobody waits for it
        waiting = self._waiting.get(causation or "")
        if waiting is not None and not waiting[0].done():
            future, reply_type = waiting
            future.set_result(reply_type.model_validate_json(message.body))

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
