"""HTTP access logs: one structured line per request, written by the service itself (uvicorn's own access log
stays off: it logs the raw path with its query string)."""

import logging
import time

from publipost_logging import get_logger
from publipost_telemetry import route_template
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = get_logger("publipost.access")

QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
"""Asked every few seconds by probes and Prometheus: their lines are written at DEBUG, so they do not bury the
others at the default level."""


class AccessLog:
    """ASGI middleware: once a request is answered, `http request` with its method, route template
    (/mailings/{mailing_id}, never the path itself, whose ids would make every line different), status,
    duration in milliseconds, and the caller's tenant when a route's `require` found one. Never the query
    string nor a header: they may carry a token or an API key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The request's state (request.state), where publipost_auth leaves the caller it found: made here so
        # the application fills this very dict.
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500  # unless the application answers: an exception that escapes it is answered 500

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        finally:
            route = route_template(scope)
            fields: dict[str, object] = {
                "method": scope["method"],
                "route": route,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            principal = state.get("principal")
            if principal is not None:
                fields["tenant_id"] = principal.tenant_id
            if route in QUIET_ROUTES and status < 500:
                level = logging.DEBUG
            else:
                level = logging.WARNING if status >= 500 else logging.INFO
            log.log(level, "http request", **fields)
