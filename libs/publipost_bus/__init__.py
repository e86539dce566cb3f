"""The bus every service uses: topology, typed publish and consume, retries, dead letters."""

from .bus import Bus, Components
from .publishers import PublisherRefused, Publishers, broker_user
from .retry import PermanentFailure, RetryPolicy
from .topology import Topology

__all__ = [
    "Bus",
    "Components",
    "PermanentFailure",
    "PublisherRefused",
    "Publishers",
    "RetryPolicy",
    "Topology",
    "broker_user",
]
