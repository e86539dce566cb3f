"""dispatch's Prometheus metrics, registered once per process and served on /metrics.

Labels stay bounded: the account is a sending account's id ("default" for the service's own), never a tenant,
a dispatch or an address."""

from prometheus_client import Counter, Histogram

EMAILS = Counter(
    "publipost_dispatch_emails_total",
    "E-mails handed to an account's SMTP server, one per SMTP transaction, by the server's answer: sent "
    "(accepted), failed (refused for good, 5xx), deferred (refused for now, 4xx, or the server out of reach: "
    "the send is tried again while it has tries left), uncertain (the message went and no answer came: never "
    "sent again). A document failed before any SMTP exchange (no address, no PDF) is no e-mail: "
    "delivery.recorded and the send history count it.",
    ["outcome", "account"],
)
SMTP_SECONDS = Histogram(
    "publipost_dispatch_smtp_seconds",
    "Duration of one SMTP transaction (MAIL FROM to the answer after DATA, a new connection included when one "
    "was needed), by account; the wait for the account's rate limit is not in it.",
    ["account"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PAUSES = Counter(
    "publipost_dispatch_paused_total",
    "Dispatches paused (too many SMTP errors, the account's daily cap): each pause counted once, by the replica "
    "that paused it. A gauge of dispatches paused now would need the database's answer; the counter is what an "
    "alert reads (increase over a window).",
)
