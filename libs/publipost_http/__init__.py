"""What every service's HTTP API has: liveness, readiness that tells the truth, Prometheus metrics."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadinessCheck = Callable[[], Awaitable[bool]]


def health_router(checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    """/healthz: the process answers. /readyz: every dependency answers (503 naming those that do not)."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(*(checks[name]() for name in names), return_exceptions=True)
        status = {name: result is True for name, result in zip(names, results, strict=True)}
        ready = all(status.values())
        return JSONResponse({"ready": ready, "checks": status}, status_code=200 if ready else 503)

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


@dataclass(frozen=True)
class PageParams:
    """`?page=&per_page=` of a list, newest first; one page is at most 100 items."""

    page: Annotated[int, Query(ge=1)] = 1
    per_page: Annotated[int, Query(ge=1, le=100)] = 20

    @property
    def skip(self) -> int:
        return (self.page - 1) * self.per_page


Paging = Annotated[PageParams, Depends()]
