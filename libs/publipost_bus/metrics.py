from prometheus_client import Counter, Histogram

MESSAGES = Counter(
    "publipost_messages_total",
    "Messages handled by a consumer, by outcome (handled, duplicate, retried, dead_lettered).",
    ["consumer", "outcome"],
)
HANDLE_SECONDS = Histogram(
    "publipost_message_handle_seconds",
    "Time a consumer spent on one message.",
    ["consumer"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PUBLISHED = Counter("publipost_events_published_total", "Events published, by type.", ["type"])
