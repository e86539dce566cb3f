"""What every service's HTTP API has: liveness, readiness that tells the truth, Prometheus metrics, request
bodies bounded while they arrive, numbers the database can store, and downloads named safely."""

import asyncio
import json
import math
import re
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ReadinessCheck = Callable[[], Awaitable[bool]]


class CachedCheck:
    """A readiness check asked at most once per `ttl_s`: probes in that time, and probes arriving while it
    runs, share its answer, so however many probes come (every replica's, every few seconds, plus people
    looking) the dependency sees one ping a second. An exception counts as "down"."""

    def __init__(self, check: ReadinessCheck, ttl_s: float = 1.0) -> None:
        self._check = check
        self.ttl_s = ttl_s
        self._answer: bool | None = None
        self._answered_at = 0.0
        self._pending: asyncio.Future[bool] | None = None

    async def __call__(self) -> bool:
        if self._answer is not None and time.monotonic() - self._answered_at < self.ttl_s:
            return self._answer
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._ask())
        # Shielded: a probe that gives up (its client hung up) does not cancel the ping the others await.
        return await asyncio.shield(self._pending)

    async def _ask(self) -> bool:
        try:
            answer = await self._check() is True
        except Exception:  # noqa: BLE001 - readiness answers a yes/no, whatever the cause
            answer = False
        self._answer, self._answered_at, self._pending = answer, time.monotonic(), None
        return answer


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool]
    down: list[str]


def health_router(checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    """/healthz: the process answers. /readyz: every dependency answers (503 naming those that do not, in
    `down`). A check must answer within a probe's timeout: give it its own short one."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "A dependency does not answer: named in `down`."}},
    )
    async def readyz() -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(*(checks[name]() for name in names), return_exceptions=True)
        status = {name: result is True for name, result in zip(names, results, strict=True)}
        down = [name for name, up in status.items() if not up]
        return JSONResponse({"ready": not down, "checks": status, "down": down}, status_code=503 if down else 200)

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


TenantId = Annotated[
    str,
    Header(alias="X-Tenant-Id", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Tenant."),
]


def correlation_id(x_correlation_id: Annotated[str | None, Header(max_length=128)] = None) -> str:
    """The caller's correlation id, or a new one: every event an HTTP call causes carries it."""
    return x_correlation_id or str(uuid.uuid4())


# --- numbers a query can carry ------------------------------------------------------

INT64_MAX = 2**63 - 1
"""The largest integer MongoDB stores (a signed 64-bit integer): a request's number past it cannot even be
sent in a query, so it is refused as the caller's mistake, naming the field, rather than failing at the driver."""
MAX_PER_PAGE = 100
MAX_PAGE = INT64_MAX // MAX_PER_PAGE
"""The last page whose first item (skip = (page - 1) × items per page) the database can still be asked for."""

PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, from 1.")]
IndexCursor = Annotated[
    int, Query(ge=-1, le=INT64_MAX, description="Index of the last document of the previous page (-1: from the start).")
]


@dataclass(frozen=True)
class PageParams:
    """`?page=&per_page=` of a list, newest first; one page is at most 100 items."""

    page: PageNumber = 1
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 20

    @property
    def skip(self) -> int:
        return (self.page - 1) * self.per_page


Paging = Annotated[PageParams, Depends()]


async def json_numbers_storable(request: Request) -> None:
    """App-wide dependency: a JSON body's numbers must be finite and, when whole, within the database's integer
    range. Python's JSON reader accepts NaN and Infinity (and 1e400 reads as infinity), which no JSON answer can
    carry back and MongoDB cannot compare; an integer past 64 bits cannot be stored. Each is refused with 422
    naming where it is in the body, before the body is validated against the route's model (whose error would
    echo the NaN and fail to serialise)."""
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type.split(";", 1)[0] or not await request.body():
        return
    try:
        body = await request.json()  # parsed once already by FastAPI: this is its cached value
    except ValueError:
        return  # not JSON: FastAPI has answered it already, or the route takes no body
    errors = list(_unstorable_numbers(body))
    if errors:
        raise RequestValidationError(errors)


def _unstorable_numbers(body: Any) -> Any:
    # Iterative, so a deeply nested body costs no recursion.
    pending: list[tuple[tuple[Any, ...], Any]] = [(("body",), body)]
    while pending:
        loc, value = pending.pop()
        if isinstance(value, dict):
            pending.extend(((*loc, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            pending.extend(((*loc, index), item) for index, item in reversed(list(enumerate(value))))
        elif isinstance(value, float) and not math.isfinite(value):
            yield {"loc": loc, "msg": "NaN and Infinity are not numbers JSON can carry", "type": "finite_number"}
        elif isinstance(value, int) and not isinstance(value, bool) and not -INT64_MAX - 1 <= value <= INT64_MAX:
            message = f"an integer must lie between {-INT64_MAX - 1} and {INT64_MAX} (64 bits, what the database stores)"
            yield {"loc": loc, "msg": message, "type": "int64_range"}


# --- request bodies -----------------------------------------------------------------

DEFAULT_MAX_BODY_BYTES = 1 << 20
FORM_OVERHEAD_BYTES = 64 * 1024
"""Room for the multipart framing and the other form fields around an uploaded file."""


def upload_limit(file_bytes: int) -> int:
    """The body limit of a route that takes one file of at most `file_bytes` in a form."""
    return file_bytes + FORM_OVERHEAD_BYTES


class BodyTooLarge(Exception):
    """Raised into the application reading a body past its limit; the 413 has already been sent."""


class BodyLimit:
    """ASGI middleware: every request body is counted as it arrives, `http.request` message by message, and the
    request is answered 413 (JSON naming the limit) as soon as it is over, whether it declared a Content-Length
    or came chunked without one, so nothing past the limit is ever read into memory or spooled to disk.

    The limit is `default_bytes`, or that of the matched route in `route_bytes` ("POST /recipients/import"),
    looked up when the application first reads the body (routing is done by then); a key naming a media type
    too ("POST /mailings multipart/form-data") is that route's limit for bodies of that type only, so a route
    taking either a file or JSON keeps JSON, which is parsed in memory, to the default. A route that never
    reads its body is not limited: it costs nothing.
    """

    def __init__(self, app: ASGIApp, default_bytes: int, route_bytes: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.route_bytes = dict(route_bytes or {})

    def limit_for(self, scope: Scope) -> int:
        route = f"{scope['method']} {getattr(scope.get('route'), 'path', None)}"
        media_type = _header(scope, b"content-type").split(";", 1)[0].strip().lower()
        return self.route_bytes.get(f"{route} {media_type}", self.route_bytes.get(route, self.default_bytes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit: int | None = None
        received = 0
        started = answered = False

        async def refuse(limit: int) -> None:
            nonlocal answered
            if not started and not answered:
                answered = True
                what = f"{scope['method']} {getattr(scope.get('route'), 'path', scope['path'])}"
                detail = [
                    {
                        "loc": ["body"],
                        "msg": f"the request body is over the {limit}-byte limit of {what}",
                        "type": "body_too_large",
                        "ctx": {"limit": limit},
                    }
                ]
                body = json.dumps({"detail": detail}).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                # The connection is not closed on a client still sending: most clients write their whole body
                # before reading, and a close with unread data (a TCP reset) would lose them this answer. The
                # server discards the rest of the body as it arrives; the application reads none of it.
                await send({"type": "http.response.start", "status": 413, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            raise BodyTooLarge(f"request body over {limit} bytes")

        async def counted_receive() -> Message:
            nonlocal limit, received
            if limit is None:
                limit = self.limit_for(scope)
                declared = _content_length(scope)
                if declared is not None and declared > limit:
                    await refuse(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    await refuse(limit)
            return message

        async def send_unless_answered(message: Message) -> None:
            nonlocal started
            if answered:
                return  # whatever the application makes of BodyTooLarge (FastAPI answers 400), 413 was said
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, send_unless_answered)
        except Exception:
            if not answered:
                raise


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    return int(value) if value.isdigit() else None


def _header(scope: Scope, wanted: bytes) -> str:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return value.decode("latin-1")
    return ""


# --- downloads ----------------------------------------------------------------------

_NOT_IN_QUOTED_NAME = re.compile(r'[^\x20-\x7e]|["\\]')


def content_disposition(filename: str, fallback: str = "download") -> str:
    """`attachment` with a name every client reads safely, whatever the name holds (quotes, line breaks,
    accents): an ASCII `filename` stripped of quotes, backslashes and control characters for old clients, and
    the real name percent-encoded in `filename*` (RFC 6266, RFC 5987), which no byte of it can break out of."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = _NOT_IN_QUOTED_NAME.sub("", ascii_name).strip() or fallback
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
