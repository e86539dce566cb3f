"""Asking the recipient directory for addresses, many questions in flight at once.

The bus's request/reply (FastStream's) takes a lock per process and subscribes to the reply queue
anew for each request, so a replica could resolve only one address at a time, a few dozen a second.
Here one channel consumes RabbitMQ's direct reply-to once, requests go out as fast as sends need
them, and each answer is matched to its question by the answer's causation id (the question's event
id, as every follow-up event carries it).
"""

import asyncio

import aio_pika
from publipost_bus import Bus
from publipost_contracts import RecipientResolved, ResolveRecipient

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class RecipientResolver:
    def __init__(self, bus: Bus, rabbitmq_url: str, timeout_s: float) -> None:
        self._bus = bus
        self._url = rabbitmq_url
        self._timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[RecipientResolved]] = {}
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        channel = await self._connection.channel(publisher_confirms=False)
        replies = await channel.declare_queue(DIRECT_REPLY_TO, passive=True)
        await replies.consume(self._on_reply, no_ack=True)
        self._exchange = await channel.declare_exchange(
            self._bus.topology.events.name, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def resolve(self, request: ResolveRecipient) -> RecipientResolved:
        """The directory's answer; TimeoutError when none comes in time."""
        assert self._exchange is not None, "start() the resolver first"
        key = str(request.event_id)
        answer: asyncio.Future[RecipientResolved] = asyncio.get_running_loop().create_future()
        self._waiting[key] = answer
        try:
            await self._exchange.publish(
                aio_pika.Message(
                    self._bus.encode(request),
                    content_type="application/json",
                    message_id=key,
                    correlation_id=request.correlation_id,
                    reply_to=DIRECT_REPLY_TO,
                    type=request.type,
                ),
                routing_key=request.routing_key,
            )
            return await asyncio.wait_for(answer, self._timeout_s)
        finally:
            self._waiting.pop(key, None)

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        answer = RecipientResolved.model_validate_json(message.body)
        waiting = self._waiting.get(answer.causation_id or "")
        if waiting is not None and not waiting.done():
            waiting.set_result(answer)
