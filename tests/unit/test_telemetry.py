"""Traces and access logs of HTTP (issue 19, point 5): a request's span is named by its route template and
continues the caller's trace; a call to another service sends the trace on; each request gets one access log
line without its path's ids, query string or headers; with tracing unset nothing is set up."""

import subprocess
import sys
from typing import Annotated

import httpx
import structlog
from fastapi import Depends, FastAPI, Request
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from publipost_auth import Principal, PrincipalKind
from publipost_bus import Bus
from publipost_http.access_log import AccessLog
from publipost_settings import ServiceSettings
from publipost_telemetry import TracedRequests, traced_transport, tracer_provider

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def _tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _caller(request: Request) -> Principal:
    principal = Principal("acme", "u-1", frozenset(), PrincipalKind.USER)
    request.state.principal = principal  # as publipost_auth.require leaves it
    return principal


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/mailings/{mailing_id}")
    async def mailing(mailing_id: str, caller: Annotated[Principal, Depends(_caller)]) -> dict[str, str]:
        return {"id": mailing_id, "trace": format(trace.get_current_span().get_span_context().trace_id, "032x")}

    return app


async def test_a_request_span_is_named_by_its_route_and_continues_the_caller_trace():
    provider, exporter = _tracing()
    app = _app()
    app.add_middleware(TracedRequests, provider=provider)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://s") as http:
        answer = await http.get(
            "/mailings/m-42?api_key=very-secret", headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"}
        )

    assert answer.json()["trace"] == TRACE_ID  # the route ran inside the caller's trace
    (span,) = exporter.get_finished_spans()
    assert (span.name, span.kind) == ("GET /mailings/{mailing_id}", SpanKind.SERVER)
    assert format(span.parent.span_id, "016x") == CALLER_SPAN
    assert span.attributes["http.route"] == "/mailings/{mailing_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert "very-secret" not in repr(dict(span.attributes)) and "m-42" not in span.name


async def test_a_call_to_another_service_is_a_client_span_and_sends_the_trace_on():
    provider, exporter = _tracing()
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    transport = traced_transport(httpx.MockTransport(answer), provider)
    async with httpx.AsyncClient(transport=transport, base_url="http://merge:8103") as http:
        with provider.get_tracer("test").start_as_current_span("handling a message") as handling:
            await http.get("/mailings/m-1", params={"page": 2})

    trace_id = format(handling.get_span_context().trace_id, "032x")
    assert sent[0].headers["traceparent"].split("-")[1] == trace_id
    client = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT)
    assert client.parent.span_id == handling.get_span_context().span_id
    assert client.attributes["url.path"] == "/mailings/m-1" and client.attributes["server.address"] == "merge"


def test_without_an_endpoint_nothing_is_traced():
    settings = ServiceSettings(service_name="merge")
    assert settings.otlp_endpoint is None
    assert tracer_provider(settings) is None
    inner = httpx.MockTransport(lambda request: httpx.Response(204))
    assert traced_transport(inner, None) is inner
    middlewares = Bus(settings).broker.middlewares
    assert not any("Telemetry" in type(m).__name__ for m in middlewares)


def test_the_standard_otlp_variable_is_read_when_publipost_own_is_unset(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert ServiceSettings(service_name="merge").otlp_endpoint == "http://collector:4318"
    monkeypatch.setenv("PUBLIPOST_OTLP_ENDPOINT", "http://ours:4318")
    assert ServiceSettings(service_name="merge").otlp_endpoint == "http://ours:4318"


async def test_each_request_has_one_access_line_with_its_route_status_and_tenant_and_no_query():
    app = _app()
    app.add_middleware(AccessLog)

    with structlog.testing.capture_logs() as lines:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://s") as http:
            await http.get("/mailings/m-42?api_key=very-secret", headers={"Authorization": "Bearer tok-secret"})
            await http.get("/nowhere/at-all?token=other-secret")

    access = [line for line in lines if line["event"] == "http request"]
    assert len(access) == 2
    found, missing = access
    assert {k: found[k] for k in ("method", "route", "status", "tenant_id")} == {
        "method": "GET",
        "route": "/mailings/{mailing_id}",
        "status": 200,
        "tenant_id": "acme",
    }
    assert isinstance(found["duration_ms"], float)
    assert (missing["route"], missing["status"]) == ("unmatched", 404) and "tenant_id" not in missing
    text = repr(access)
    assert "secret" not in text and "m-42" not in text and "at-all" not in text


OTLP_RECEIVER = """
import http.server, sys, threading
from publipost_settings import ServiceSettings
from publipost_telemetry import flush, tracer_provider

received = []

class Collector(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
threading.Thread(target=server.serve_forever, daemon=True).start()
settings = ServiceSettings(service_name="merge", otlp_endpoint=f"http://127.0.0.1:{server.server_port}")
provider = tracer_provider(settings)
assert tracer_provider(settings) is provider  # one per process
with provider.get_tracer("test").start_as_current_span("a merge"):
    pass
flush()
path, body = received[0]
print(path, b"publipost-merge" in body, b"a merge" in body)
"""


def test_with_an_endpoint_spans_go_by_otlp_http_named_after_the_service():
    # A process of its own: the provider is the process's, made once.
    result = subprocess.run(
        [sys.executable, "-c", OTLP_RECEIVER], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["/v1/traces", "True", "True"], result.stderr
