"""Exchange and queue names, and the arguments that make every consumer queue safe.

- One topic exchange carries every event, routed by its type (`merge.requested`).
- Each consumer has a durable quorum queue bound to the types it handles.
- A queue rejects what it cannot handle into its own dead-letter queue
  (`<queue>.dlq`); the broker does the same after `delivery_limit` redeliveries,
  so a message that crashes its consumer never blocks the queue.
- Retries wait in `<queue>.retry` for their backoff delay (per-message TTL),
  then expire back into the consumer queue through the default exchange.
- A message the consumer gives up on (a permanent failure, the last attempt, or
  one it cannot read: too large, an unknown schema version) is published to
  the dead-letter exchange by the consumer itself, with the reason in a
  header; the broker's own dead-lettering (delivery limit) says why in `x-death`.
"""

from dataclasses import dataclass

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

ATTEMPT_HEADER = "x-publipost-attempt"
DEAD_LETTER_REASON_HEADER = "x-publipost-dead-letter-reason"
DEAD_LETTERED_AT_HEADER = "x-publipost-dead-lettered-at"
ROUTING_KEY_HEADER = "x-publipost-routing-key"
"""The routing key the message was published with (its event type): a retried or replayed copy reaches its
queue through the default exchange, whose routing key is the queue's name."""
PUBLISHER_HEADER = "x-publipost-publisher"
"""The RabbitMQ user that first published the message (its user_id): a retried or dead-lettered copy is
published again by the consuming service, under its own user."""
DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Topology:
    namespace: str
    delivery_limit: int = 10

    @property
    def events(self) -> RabbitExchange:
        return RabbitExchange(f"{self.namespace}.events", type=ExchangeType.TOPIC, durable=True)

    @property
    def dead_letter(self) -> RabbitExchange:
        return RabbitExchange(f"{self.namespace}.dead-letter", type=ExchangeType.DIRECT, durable=True)

    @property
    def retry(self) -> RabbitExchange:
        return RabbitExchange(f"{self.namespace}.retry", type=ExchangeType.DIRECT, durable=True)

    def queue_name(self, service: str, routing_key: str) -> str:
        return f"{self.namespace}.{service}.{routing_key}"

    def consumer_queue(self, service: str, routing_key: str) -> RabbitQueue:
        name = self.queue_name(service, routing_key)
        return RabbitQueue(
            name,
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key=routing_key,
            arguments={
                "x-dead-letter-exchange": self.dead_letter.name,
                "x-dead-letter-routing-key": name,
                "x-delivery-limit": self.delivery_limit,
            },
        )

    def dead_letter_queue(self, queue_name: str) -> RabbitQueue:
        return RabbitQueue(
            f"{queue_name}{DLQ_SUFFIX}", queue_type=QueueType.QUORUM, durable=True, routing_key=queue_name
        )

    def retry_queue(self, queue_name: str) -> RabbitQueue:
        return RabbitQueue(
            f"{queue_name}.retry",
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key=queue_name,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue_name},
        )
