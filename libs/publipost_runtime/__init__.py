"""Boot one service: settings, logging, storage, bus and HTTP API in one process, stopped cleanly on SIGTERM."""

from .service import Service, components

__all__ = ["Service", "components"]
