"""render-pdf's Prometheus metrics, registered once per process and served on /metrics."""

from prometheus_client import Counter, Histogram

CONVERSIONS = Counter(
    "publipost_render_conversions_total",
    "Backend runs: one per combined chunk (mode=batch) or per document converted alone (mode=single).",
    ["backend", "mode"],
)
CONVERSION_FAILURES = Counter(
    "publipost_render_conversion_failures_total",
    "Backend runs that gave no usable PDF, by reason (refused, crashed, timeout, page_map, unreadable).",
    ["backend", "mode", "reason"],
)
CONVERSION_SECONDS = Histogram(
    "publipost_render_conversion_seconds",
    "Duration of one backend run.",
    ["backend", "mode"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)
DOCUMENTS = Counter(
    "publipost_render_documents_total",
    "Documents answered, by outcome (converted, failed, refused by quota, reused from an earlier delivery).",
    ["outcome"],
)
QUEUE_WAIT_SECONDS = Histogram(
    "publipost_render_queue_wait_seconds",
    "Time from a chunk being asked for (its occurred_at) to render-pdf starting on it.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
)
LIBREOFFICE_RESTARTS = Counter(
    "publipost_render_libreoffice_restarts_total",
    "LibreOffice processes renewed, by reason (conversions, crashed, timeout, not_running).",
    ["reason"],
)
