"""What every service's HTTP API refuses at the door, against the real database: bodies past their limit
(413, cut while they arrive), and numbers no JSON answer or database query can carry (422 naming the field)."""

import asyncio
import json
import math
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.settings import DispatchSettings
from publipost_localstack.processes import free_port
from publipost_merge.app import build as build_merge
from publipost_merge.domain import Mailing, MailingStatus
from publipost_merge.settings import MergeSettings
from publipost_recipient_directory.app import build as build_directory
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_scheduler.app import build as build_scheduler
from publipost_scheduler.settings import SchedulerSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings

from tests.credentials import credentials

ACME = credentials("acme")
INT64_MAX = 2**63 - 1  # what MongoDB stores

# One route that takes a JSON body in each service: (request path, the route it matches).
BODY_ROUTES = [
    (build_template, TemplateSettings, "POST", "/email-templates", "/email-templates"),
    (build_directory, RecipientDirectorySettings, "POST", "/segments", "/segments"),
    (build_merge, MergeSettings, "PATCH", "/mailings/m-1", "/mailings/{mailing_id}"),
    (build_render, RenderPdfSettings, "PUT", "/quotas/acme", "/quotas/{tenant_id}"),
    (build_dispatch, DispatchSettings, "POST", "/dispatches", "/dispatches"),
    (build_scheduler, SchedulerSettings, "POST", "/campaigns", "/campaigns"),
]


def client(service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://s")


def body_too_large(response: httpx.Response) -> dict:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/json"
    (detail,) = response.json()["detail"]
    assert detail["type"] == "body_too_large"
    return detail


@pytest.mark.parametrize(("build", "settings_class", "method", "path", "route"), BODY_ROUTES)
async def test_every_service_refuses_a_body_past_its_limit_with_413_naming_the_limit(
    make_settings, build, settings_class, method, path, route
):
    # Refused before the body is read: the service need not even be started.
    service = build(make_settings(settings_class, max_body_bytes=10_000))
    payload = json.dumps({"name": "x" * 20_000}).encode()
    async with client(service) as http:
        response = await http.request(method, path, headers={**ACME, "content-type": "application/json"}, content=payload)
        detail = body_too_large(response)
        assert detail["msg"] == f"the request body is over the 10000-byte limit of {method} {route}"
        assert detail["ctx"] == {"limit": 10_000}

        # Streamed without a Content-Length, it is cut the same way.
        async def chunks():
            for _ in range(4):
                yield payload[:5_000]

        chunked = await http.request(method, path, headers={**ACME, "content-type": "application/json"}, content=chunks())
        assert body_too_large(chunked)["ctx"] == {"limit": 10_000}


async def test_a_route_taking_a_file_or_json_keeps_json_to_the_default_limit(make_settings):
    """POST /mailings takes a records file up to its own limit; its JSON body, read into memory, the default."""
    service = build_merge(make_settings(MergeSettings, max_body_bytes=10_000, max_records_file_bytes=1_000_000))
    records = [{"id": f"r{n}", "name": "x" * 100} for n in range(200)]
    async with client(service) as http:
        as_json = await http.post("/mailings", headers=ACME, json={"template_id": "t-1", "records": records})
        detail = body_too_large(as_json)
        assert detail["msg"] == "the request body is over the 10000-byte limit of POST /mailings"

        as_file = await http.post(
            "/mailings",
            headers=ACME,
            data={"template_id": "t-1"},
            files={"file": ("r.txt", json.dumps(records).encode())},
        )
        # Past the door, read whole: the route answers for the file.
        assert as_file.status_code == 422, as_file.text
        assert as_file.json()["detail"][0]["msg"] == ".txt is not a records file; send .json, .ndjson, .csv or .xlsx"


class ReadCounter:
    """An ASGI wrapper between the server and a service: how many body bytes the service asked for."""

    def __init__(self, app) -> None:
        self.app = app
        self.read = 0

    async def __call__(self, scope, receive, send) -> None:
        async def counted():
            message = await receive()
            self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@pytest.fixture
async def serve_app():
    """`url = await serve_app(asgi_app)`: an ASGI application on a real port (uvicorn, as in production)."""
    servers = []

    async def serve(app) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None))
        servers.append((server, asyncio.create_task(server.serve())))
        while not server.started:
            await asyncio.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, task in servers:
        server.should_exit = True
        await task


async def test_a_chunked_upload_without_length_is_answered_413_and_not_read_past_the_limit(
    make_settings, running, serve_app
):
    """A 400 MB upload sent chunked used to be read whole and spooled to disk before its size was checked."""
    settings = make_settings(RecipientDirectorySettings, max_import_bytes=1_000_000, max_body_bytes=100_000)
    service = await running(build_directory(settings))
    reader = ReadCounter(service.http_app())
    url = await serve_app(reader)
    boundary = "publipost-test-boundary"
    sent = 0

    async def upload():
        nonlocal sent
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.csv"\r\n'
            "Content-Type: text/csv\r\n\r\ncustomer_number;document_type\r\n"
        ).encode()
        line = b"C0001;invoice\r\n" * 4096
        while sent < 64_000_000:
            sent += len(line)
            yield line
        yield f"\r\n--{boundary}--\r\n".encode()

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        response = await http.post(
            "/recipients/import",
            headers={**ACME, "content-type": f"multipart/form-data; boundary={boundary}"},
            content=upload(),
        )
        detail = body_too_large(response)
        assert detail["msg"] == "the request body is over the 1065536-byte limit of POST /recipients/import"
        # The service stopped at the limit; the server dropped the rest as it came, so the client,
        # which sends its whole body before reading, still got the answer.
        assert sent >= 64_000_000
        assert reader.read < 1_065_536 + 256 * 1024, reader.read

        # A file within the route's own limit goes through, far past the service's default for other routes.
        rows = "".join(f"C{n:05d};invoice;{'Dupont SARL ' * 16}\r\n" for n in range(4_000))
        csv = f"customer_number;document_type;name\r\n{rows}".encode()
        assert 100_000 < len(csv) < 1_000_000
        within = await http.post("/recipients/import", headers=ACME, files={"file": ("ok.csv", csv)})
        assert within.status_code == 200, within.text
        assert within.json()["rows"] == 4_000


async def test_page_numbers_and_cursors_past_the_database_integers_are_refused_naming_the_field(
    make_settings, running
):
    merge = await running(build_merge(make_settings(MergeSettings)))
    await merge.components.mailings.create(
        Mailing(
            id="m-1",
            tenant_id="acme",
            request_id="r-1",
            correlation_id="c-1",
            name="November",
            base_name="November",
            output="pdf",
            status=MailingStatus.READY,
            created_at=datetime.now(UTC),
        )
    )
    dispatch = await running(build_dispatch(make_settings(DispatchSettings)))
    directory = await running(build_directory(make_settings(RecipientDirectorySettings)))
    async with client(merge) as merge_http, client(dispatch) as dispatch_http, client(directory) as directory_http:
        for http, path, params, field in [
            (merge_http, "/mailings", {"page": 10**30}, "page"),
            (merge_http, "/mailings", {"page": 2**62}, "page"),  # a skip of 2**62 × 20 is past 64 bits
            (merge_http, "/mailings/m-1/documents", {"after": 2**63}, "after"),
            (dispatch_http, "/history", {"page": 2**62}, "page"),
            (directory_http, "/segments", {"page": 10**30}, "page"),
        ]:
            response = await http.get(path, headers=ACME, params=params)
            assert response.status_code == 422, (path, params, response.status_code, response.text)
            assert response.json()["detail"][0]["loc"] == ["query", field], response.text

        # The last page the database can still be asked for is answered, empty.
        last = await merge_http.get("/mailings", headers=ACME, params={"page": INT64_MAX // 100, "per_page": 100})
        assert last.status_code == 200 and last.json()["items"] == []
        assert (await merge_http.get("/mailings/m-1/documents", headers=ACME, params={"after": INT64_MAX})).status_code == 200


async def test_nan_infinity_and_integers_past_64_bits_in_a_json_body_are_refused_naming_the_field(
    make_settings, running
):
    dispatch = await running(build_dispatch(make_settings(DispatchSettings)))
    scheduler = await running(build_scheduler(make_settings(SchedulerSettings)))
    account = {
        "name": "Billing", "host": "127.0.0.1", "port": 2525, "tls": "none", "from_address": "billing@acme.test",
        "limits": {"connections": 2, "daily_cap": 1000},
    }
    campaign = {"name": "Weekly", "mailing_id": "m-1", "recurrence": {"kind": "weekly", "weekday": 1, "time": "09:00"}}
    async with client(dispatch) as dispatch_http, client(scheduler) as scheduler_http:
        for http, path, body, loc in [
            (dispatch_http, "/accounts", {**account, "limits": {"connections": 2, "daily_cap": 10**30}}, ["limits", "daily_cap"]),
            (dispatch_http, "/accounts", {**account, "port": math.nan}, ["port"]),
            (scheduler_http, "/campaigns", {**campaign, "recurrence": {**campaign["recurrence"], "weekday": math.inf}}, ["recurrence", "weekday"]),
            (scheduler_http, "/campaigns", {**campaign, "name": -math.inf}, ["name"]),
        ]:
            # Python writes NaN and Infinity as JSON itself would not; a client library may too.
            response = await http.post(path, headers={**ACME, "content-type": "application/json"}, content=json.dumps(body))
            assert response.status_code == 422, (body, response.status_code, response.text)
            detail = response.json()["detail"][0]
            assert detail["loc"] == ["body", *loc], response.text
            assert detail["type"] in ("finite_number", "int64_range")

        stored = await dispatch_http.post("/accounts", headers=ACME, json=account)
        assert stored.status_code == 201, stored.text
