"""The bus every service uses: topology, typed publish and consume, retries, dead letters."""

from .bus import Bus
from .retry import PermanentFailure, RetryPolicy
from .topology import Topology

__all__ = ["Bus", "PermanentFailure", "RetryPolicy", "Topology"]
