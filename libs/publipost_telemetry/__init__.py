"""Traces: one OpenTelemetry setup for every service, exported by OTLP/HTTP when `otlp_endpoint` is set.

Unset (the default), nothing is set up: no provider, no exporter thread, no span made anywhere, and every
piece below is left out by its caller. Set, a message's trace runs from the HTTP call or the publisher that
started it through every consumer after it:

- the bus: FastStream's RabbitTelemetryMiddleware (publipost_bus) carries the trace context in the AMQP
  headers (`traceparent`), so a consumer's span is a child of its publisher's;
- HTTP served: `TracedRequests`, a server span per request named by its route template, continuing the
  caller's `traceparent`;
- HTTP called: `traced_transport`, a client span per call of the service client (publipost_auth), which
  sends `traceparent` on;
- the database: `MongoSpans`, a client span per command.

The three last are small pieces of our own rather than the opentelemetry-instrumentation-* packages: those
(0.66b1) require opentelemetry-api 1.45.1, older than the 1.45.2 fastapi brings. Each keeps to the
semantic conventions' names, so a backend shows them like the contrib ones.
"""

import threading
from collections.abc import Mapping
from typing import Any

import httpx
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace import TracerProvider as ApiTracerProvider
from publipost_settings import ServiceSettings
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MongoSpans", "TracedRequests", "flush", "route_template", "traced_transport", "tracer_provider"]

TRACER_NAME = "publipost"
_lock = threading.Lock()
_provider: ApiTracerProvider | None = None


def tracer_provider(settings: ServiceSettings) -> ApiTracerProvider | None:
    """The process's tracer provider, made on the first call when `settings.otlp_endpoint` is set (resource
    `service.name` = publipost-<service>, spans batched to <endpoint>/v1/traces); None while tracing is off.

    One per process, as a process is one service; it is also made the global provider, so any library that
    traces through the OpenTelemetry API joins the same traces."""
    global _provider
    if not settings.otlp_endpoint:
        return _provider
    with _lock:
        if _provider is None:
            # Imported here: the SDK and its exporter (requests, protobuf) are never loaded by a service
            # without tracing.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider = TracerProvider(resource=Resource.create({"service.name": f"publipost-{settings.service_name}"}))
            endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
            trace.set_tracer_provider(provider)
            _provider = provider
    return _provider


def flush(timeout_s: float = 5.0) -> None:
    """Send the spans still batched (on shutdown, so the last handling of a stopping replica is seen)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))  # type: ignore[attr-defined]  # the SDK's provider


# --- HTTP served --------------------------------------------------------------------------


class _AsgiHeaders(Getter[Scope]):
    def get(self, carrier: Scope, key: str) -> list[str] | None:
        wanted = key.lower().encode()
        values = [value.decode("latin-1") for name, value in carrier.get("headers", ()) if name == wanted]
        return values or None

    def keys(self, carrier: Scope) -> list[str]:
        return [name.decode("latin-1") for name, _ in carrier.get("headers", ())]


def route_template(scope: Scope) -> str:
    """The matched route's template (/mailings/{mailing_id}), never the raw path: bounded, and free of ids."""
    return getattr(scope.get("route"), "path", None) or "unmatched"


class TracedRequests:
    """ASGI middleware: one server span per HTTP request, current while the route runs (its database
    commands, calls and publishes are its children), continuing the caller's trace (`traceparent`).
    Named `<METHOD> <route template>`; the query string and headers are not recorded."""

    def __init__(self, app: ASGIApp, provider: ApiTracerProvider) -> None:
        self.app = app
        self.tracer = provider.get_tracer(TRACER_NAME)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        parent = propagate.extract(scope, getter=_AsgiHeaders())
        status = 500

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracer.start_as_current_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.scheme": scope.get("scheme", "http")},
        ) as span:
            try:
                await self.app(scope, receive, send_seen)
            finally:
                route = route_template(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))


# --- HTTP called --------------------------------------------------------------------------


class _TracedTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, provider: ApiTracerProvider) -> None:
        self.inner = inner
        self.tracer = provider.get_tracer(TRACER_NAME)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        method = request.method
        attributes = {
            "http.request.method": method,
            "server.address": request.url.host,
            "server.port": request.url.port or (443 if request.url.scheme == "https" else 80),
            "url.path": request.url.path,  # not the full URL: its query may carry what logs must not
        }
        with self.tracer.start_as_current_span(method, kind=SpanKind.CLIENT, attributes=attributes) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            request.headers.update(carrier)
            response = await self.inner.handle_async_request(request)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def traced_transport(inner: httpx.AsyncBaseTransport, provider: ApiTracerProvider | None) -> httpx.AsyncBaseTransport:
    """`inner`, making a client span per call and sending the trace on (`traceparent`) when tracing is on."""
    return inner if provider is None else _TracedTransport(inner, provider)


# --- the database -------------------------------------------------------------------------


class MongoSpans(CommandListener):
    """A client span per database command, child of whatever span is current when the command starts (the
    message's or the request's). The command's filter and values are not recorded: only its name, database
    and collection."""

    def __init__(self, provider: ApiTracerProvider) -> None:
        self.tracer = provider.get_tracer(TRACER_NAME)
        self._spans: dict[tuple[Any, int], trace.Span] = {}

    def started(self, event: CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        attributes: dict[str, Any] = {
            "db.system.name": "mongodb",
            "db.namespace": event.database_name,
            "db.operation.name": event.command_name,
        }
        if isinstance(target, str):
            attributes["db.collection.name"] = target
        name = f"{event.command_name} {target}" if isinstance(target, str) else event.command_name
        span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        self._spans[(event.connection_id, event.request_id)] = span

    def succeeded(self, event: CommandSucceededEvent) -> None:
        span = self._spans.pop((event.connection_id, event.request_id), None)
        if span is not None:
            span.end()

    def failed(self, event: CommandFailedEvent) -> None:
        span = self._spans.pop((event.connection_id, event.request_id), None)
        if span is not None:
            failure: Mapping[str, Any] = event.failure or {}
            span.set_status(Status(StatusCode.ERROR, str(failure.get("errmsg", ""))[:200]))
            span.end()
