import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import pymongo
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import iter_route_contexts
from faststream import FastStream
from faststream.specification import AsyncAPI
from publipost_auth import Authenticator
from publipost_bus import Bus
from publipost_http import (
    BodyLimit,
    CachedCheck,
    ReadinessCheck,
    health_router,
    json_numbers_storable,
)
from publipost_http.access_log import AccessLog
from publipost_http.errors import answer_errors, declare_errors, refusal_answer
from publipost_idempotency import ProcessedMessages
from publipost_logging import configure_logging, get_logger
from publipost_refusals import Refusal
from publipost_settings import ServiceSettings
from publipost_storage import Migrated, Repository, Schema, Storage, Upgrade
from publipost_telemetry import TracedRequests, flush, tracer_provider

Hook = Callable[[], Awaitable[None]]
PROBE_TIMEOUT_S = 0.8  # as Storage.ping: within a Kubernetes probe's 1 s


class Timer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def components(request: Request) -> Any:
    """FastAPI dependency: the service's components (repositories, bus, settings)."""
    return request.app.state.components


log = get_logger(__name__)


@dataclass
class Service:
    """The bootstrap of a service: what it owns and how it starts and stops.

    Start: once the stored schema is this code's (`migrate`, run before by
    `python -m publipost migrate`), `on_start` hooks (workers a consumer
    needs), then consumers, then `timers` (loops that publish, so they need
    the broker).
    Stop (SIGTERM): timers, then consumers, waiting for in-flight messages,
    then the hooks in reverse, then the database, so nothing in flight loses
    its store.
    """

    settings: ServiceSettings
    bus: Bus
    storage: Storage
    components: Any = None
    routers: Iterable[APIRouter] = ()
    repositories: Iterable[Repository] = ()
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    readiness: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    title: str = ""
    # Routes whose bodies may exceed settings.max_body_bytes (uploads): "POST /recipients/import" → bytes, or
    # "POST /mailings multipart/form-data" → bytes for that media type only (publipost_http.BodyLimit).
    body_limits: Mapping[str, int] = field(default_factory=dict)
    # Who calls the routes guarded by publipost_auth.require; built from the settings unless given (tests).
    authenticator: Authenticator | None = None
    # The stored schema this code needs (publipost_storage.schema): a new index or data upgrade is a new version.
    schema_version: int = 1
    upgrades: Sequence[Upgrade] = ()
    _schema_current: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.authenticator is None:
            self.authenticator = Authenticator.for_service(self.settings, self.storage.client)
        self.bus.inbox = ProcessedMessages(self.storage.db)
        self.bus.provide(self.components)
        self.repositories = [*self.repositories, self.bus.inbox]
        self.schema = Schema(self.storage.db, self.schema_version, self.repositories, self.storage.blobs, self.upgrades)

    @property
    def asyncapi(self) -> AsyncAPI:
        return AsyncAPI(self.bus.broker, title=self.title or f"publipost-{self.settings.service_name}")

    def stream_app(self) -> FastStream:
        """The FastStream application, for `faststream docs` and the AsyncAPI document."""
        return FastStream(self.bus.broker, specification=self.asyncapi)

    async def migrate(self) -> Migrated:
        return await self.schema.migrate()

    async def start(self) -> None:
        await self._schema_migrated()
        for hook in self.on_start:
            await hook()
        await self.bus.start()
        for timer in self.timers:
            await timer.start()
        log.info("service started", port=self.settings.http_port)

    async def _schema_migrated(self, poll_s: float = 2.0) -> None:
        """Work only on the schema this code knows: wait, not ready, while the store is older."""
        if await self.schema.current():
            return
        log.warning(
            "the stored schema is older than this code's: waiting for `python -m publipost migrate`",
            stored=await self.schema.stored(),
            needed=self.schema.version,
        )
        while not await self.schema.current():
            await asyncio.sleep(poll_s)
        log.info("the stored schema is current", version=await self.schema.stored())

    async def _schema_ready(self) -> bool:
        """Readiness: asked as briefly as the database's own check (a probe waits 1 s), and remembered once
        true, as a stored schema only moves forward."""
        if not self._schema_current:
            with pymongo.timeout(PROBE_TIMEOUT_S):
                self._schema_current = await self.schema.current()
        return self._schema_current

    async def stop(self) -> None:
        """Every step runs even if one fails: with the broker gone, LibreOffice and the database still close."""
        steps = [*(timer.stop for timer in self.timers), self.bus.stop, *reversed(self.on_stop)]
        if self.authenticator is not None:
            steps.append(self.authenticator.close)  # API keys' last uses written while the database is open
        steps.append(self.storage.close)
        steps.append(self._flush_spans)
        for step in steps:
            try:
                await step()
            except Exception:
                log.exception("a stop step failed", step=getattr(step, "__qualname__", repr(step)))
        log.info("service stopped")

    @staticmethod
    async def _flush_spans() -> None:
        await asyncio.to_thread(flush)  # the exporter's HTTP call blocks

    def http_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        app = FastAPI(
            title=self.title or f"Publipost {self.settings.service_name}",
            lifespan=lifespan,
            dependencies=[Depends(json_numbers_storable)],
        )
        # Each ping has a short timeout of its own and is cached a second: a probe answers within its
        # timeout while a dependency is down, and never makes the dependency answer one ping per probe.
        checks = {
            "database": CachedCheck(self.storage.ping),
            "broker": CachedCheck(self.bus.ping),
            "schema": CachedCheck(self._schema_ready),
            **self.readiness,
        }
        app.include_router(health_router(checks))
        for router in self.routers:
            app.include_router(router)
        app.state.components = self.components
        app.state.authenticator = self.authenticator
        app.add_exception_handler(Refusal, refusal_answer)
        answer_errors(app)
        declare_errors(app)
        # FastAPI includes routers lazily: their routes, with prefixes, are listed through their contexts.
        routes = {
            f"{method} {route.path}" for route in iter_route_contexts(app.routes) for method in route.methods or ()
        }
        unknown = sorted({key for key in self.body_limits if " ".join(key.split(" ")[:2]) not in routes})
        if unknown:
            raise ValueError(f"body limits given for routes the service does not have: {', '.join(unknown)}")
        app.add_middleware(BodyLimit, default_bytes=self.settings.max_body_bytes, route_bytes=self.body_limits)
        # Outside the body limit, so its 413 is logged too; inside the request's span, so the line has its trace.
        app.add_middleware(AccessLog)
        if (tracing := tracer_provider(self.settings)) is not None:
            app.add_middleware(TracedRequests, provider=tracing)
        return app

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT; uvicorn then runs the lifespan's shutdown."""
        configure_logging(self.settings.service_name, self.settings.log_level)
        uvicorn.run(
            self.http_app(),
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_config=None,
            timeout_graceful_shutdown=int(self.settings.shutdown_grace_s),
        )
