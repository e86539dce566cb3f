"""Publipost's messages: the envelope and every event on the bus."""

# The package's version (contracts/CHANGELOG.md): a new message or optional field is a minor version, a
# new schema_version of a message a major one.
__version__ = "1.8.0"

from .envelope import MAX_MESSAGE_BYTES, Event, deterministic_id
from .events import *
from .events import ALL_EVENTS, REPLIES

__all__ = ["ALL_EVENTS", "MAX_MESSAGE_BYTES", "REPLIES", "Event", "deterministic_id"] + [e.__name__ for e in ALL_EVENTS]
