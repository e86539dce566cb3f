"""Asking the recipient directory for addresses: the questions of every send in flight go as one request.

The bus's request/reply (FastStream's) takes a lock per process and subscribes to the reply queue
anew for each request, so a replica could resolve only one address at a time, a few dozen a second.
Here one channel consumes RabbitMQ's direct reply-to once, and each answer is matched to its request
by the answer's causation id (the request's event id, as every follow-up event carries it). The
questions that arrive while a request is out are asked together in the next one (see batching.py):
the directory answers a batch with one lookup.
"""

import asyncio
from collections import defaultdict

import aio_pika
from publipost_bus import Bus
from publipost_contracts import AddressAnswer, AddressQuestion, RecipientsResolved, ResolveRecipients

from .batching import Coalescer

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class RecipientResolver:
    def __init__(self, bus: Bus, rabbitmq_url: str, timeout_s: float) -> None:
        self._bus = bus
        self._url = rabbitmq_url
        self._timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[RecipientsResolved]] = {}
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._questions = Coalescer(self._ask_many, max_batch=ResolveRecipients.MAX_QUESTIONS)

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

    async def resolve(
        self,
        tenant_id: str,
        correlation_id: str,
        *,
        customer_number: str | None,
        record_email: str | None,
        correspondence_type: str | None = None,
    ) -> AddressAnswer:
        """The directory's answer for one document; TimeoutError when none comes in time."""
        question = AddressQuestion(
            key="-", customer_number=customer_number, record_email=record_email, correspondence_type=correspondence_type
        )
        return await self._questions((tenant_id, correlation_id, question))

    async def _ask_many(self, asked: list[tuple[str, str, AddressQuestion]]) -> list[AddressAnswer]:
        """One request per tenant and correlation among the questions, all in flight at once; each
        question keyed by its place in `asked`, so the answers come back in that order."""
        groups: dict[tuple[str, str], list[AddressQuestion]] = defaultdict(list)
        for place, (tenant_id, correlation_id, question) in enumerate(asked):
            groups[(tenant_id, correlation_id)].append(question.model_copy(update={"key": str(place)}))
        replies = await asyncio.gather(
            *(
                self._ask(ResolveRecipients(tenant_id=tenant_id, correlation_id=correlation_id, questions=questions))
                for (tenant_id, correlation_id), questions in groups.items()
            )
        )
        answers = {answer.key: answer for reply in replies for answer in reply.answers}
        return [answers[str(place)] for place in range(len(asked))]

    async def _ask(self, request: ResolveRecipients) -> RecipientsResolved:
        assert self._exchange is not None, "start() the resolver first"
        key = str(request.event_id)
        answer: asyncio.Future[RecipientsResolved] = asyncio.get_running_loop().create_future()
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
                    user_id=self._bus.user_id,  # the directory's consumer checks who publishes (publipost_bus)
                ),
                routing_key=request.routing_key,
            )
            return await asyncio.wait_for(answer, self._timeout_s)
        finally:
            self._waiting.pop(key, None)

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        answer = RecipientsResolved.model_validate_json(message.body)
        waiting = self._waiting.get(answer.causation_id or "")
        if waiting is not None and not waiting.done():
            waiting.set_result(answer)
