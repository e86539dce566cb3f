"""Consumers' figures. FastStream's Prometheus middleware (set on every Bus's broker) counts what it can see:
messages received, their size, those in process, the time each took, what was published. What it cannot
tell is the outcome Publipost gives a message: a retry is a new message published to the retry exchange
and the original acknowledged, so to FastStream a retried or dead-lettered message was processed. That
outcome is counted here."""

from prometheus_client import Counter, Histogram

MESSAGES = Counter(
    "publipost_messages_total",
    "Messages handled by a consumer, by outcome (handled, duplicate, retried, dead_lettered).",
    ["consumer", "outcome"],
)
DEAD_LETTERS = Counter(
    "publipost_dead_lettered_messages_total",
    "Messages a consumer put in its dead-letter queue (<queue>.dlq), by queue and why: unreadable, "
    "publisher_refused, permanent_failure, retries_exhausted. Those the broker dead-letters itself (its delivery "
    "limit, a consumer crashing on them) are not seen here: RabbitMQ's own metrics count them.",
    ["queue", "reason"],
)
MESSAGE_AGE = Histogram(
    "publipost_message_age_seconds",
    "Age of a message when its consumer takes it up: from its event's occurred_at (set by its publisher) to "
    "the start of the attempt, retries' waits included. A backlog shows here before anyone complains.",
    ["consumer"],
    buckets=(0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400),
)
