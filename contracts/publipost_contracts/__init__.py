"""Publipost's messages: the envelope and every event on the bus."""

from .envelope import MAX_MESSAGE_BYTES, Event, deterministic_id
from .events import *
from .events import ALL_EVENTS, REPLIES

__all__ = ["ALL_EVENTS", "MAX_MESSAGE_BYTES", "REPLIES", "Event", "deterministic_id"] + [e.__name__ for e in ALL_EVENTS]
