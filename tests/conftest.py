"""The real pieces every integration test talks to: RabbitMQ, MongoDB (or SecantusDB), SMTP capture.

RABBITMQ_URL / MONGODB_URL when set; else containers when a Docker engine
answers; else local processes (the RabbitMQ server on this machine, a
SecantusDB started in a temporary folder).
"""

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import pytest
import uvicorn
from publipost_localstack.dev_issuer import client_id_of
from publipost_localstack.processes import ensure_rabbitmq, free_port, start_secantus
from publipost_localstack.smtp_capture import start_capture
from publipost_render_pdf.libreoffice import LibreOfficePool, WorkerConfig
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_runtime import Service
from publipost_settings import ServiceSettings
from pymongo import AsyncMongoClient

from tests.credentials import ISSUER, ISSUER_URL, SERVICE_SECRET
from tests.log_secrets import secrets_in

S = TypeVar("S", bound=ServiceSettings)
LOCAL_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"
AFTER_ALL = "after_all_tests"


SECRETS_IN_OUTPUT = pytest.StashKey[list[str]]()
SESSION_STARTED = pytest.StashKey[float]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{AFTER_ALL}: runs after every other test of the session (reads what they did)")
    config.stash[SECRETS_IN_OUTPUT] = []
    config.stash[SESSION_STARTED] = time.time()
    config.pluginmanager.register(_OutputScan(config), "publipost-output-scan")


class _OutputScan:
    """Scans what each test printed (the services' logs) for secrets as the run goes (tests/log_secrets.py);
    the findings wait in the config's stash for test_no_secret_in_logs."""

    def __init__(self, config: pytest.Config) -> None:
        self.findings = config.stash[SECRETS_IN_OUTPUT]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for section, content in report.sections:
            if not section.endswith(report.when):  # a phase's report repeats the earlier phases' sections
                continue
            for finding in secrets_in(content):
                self.findings.append(f"{report.nodeid} ({section}): {finding}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker(AFTER_ALL) is not None)  # a stable sort: order kept otherwise


@pytest.fixture(scope="session", autouse=True)
async def no_task_left_running() -> AsyncIterator[None]:
    """The session's event loop ends by cancelling what is still running and waiting for it: a task that
    outlives its test and does not end on cancellation would hold the run for ever after its last test.
    Those are cancelled here, given a while, and any still running is named with its stack on stderr."""
    yield
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in left:
        task.cancel()
    _, pending = await asyncio.wait(left, timeout=15) if left else (set(), set())
    for task in pending:
        frames = "".join(f"\n    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}" for frame in task.get_stack())
        os.write(2, f"\ntask still running after cancellation: {task.get_name()} {task.get_coro()!r}{frames}\n".encode())


@pytest.fixture(scope="session", autouse=True)
def query_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every service of the session, in-process or a process of the local stack (they inherit os.environ),
    records the shape of its queries here, set before any settings are built; the last test explains them."""
    path = tmp_path_factory.mktemp("queries") / "queries.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PUBLIPOST_QUERY_LOG", str(path))
        yield path


@pytest.fixture(scope="session", autouse=True)
def outbound_allows_loopback() -> Iterator[None]:
    """The tests' SMTP servers and HTTP servers run on this machine: accounts and backends may name loopback,
    as in the local stack (publipost_outbound). A test of the check sets `outbound_allow` itself."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PUBLIPOST_OUTBOUND_ALLOW", '["127.0.0.0/8", "::1"]')
        yield


@dataclass(frozen=True)
class Infra:
    rabbitmq_url: str
    mongodb_url: str


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 - no engine, whatever the reason
        return False
    return True


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    rabbitmq_url = os.environ.get("RABBITMQ_URL")
    mongodb_url = os.environ.get("MONGODB_URL")
    cleanups: list[Callable[[], Any]] = []
    if (rabbitmq_url is None or mongodb_url is None) and _docker_answers():
        if rabbitmq_url is None:
            from testcontainers.rabbitmq import RabbitMqContainer

            rabbit = RabbitMqContainer("rabbitmq:3.13-alpine").start()
            cleanups.append(rabbit.stop)
            rabbitmq_url = f"amqp://guest:guest@{rabbit.get_container_host_ip()}:{rabbit.get_exposed_port(5672)}/"
        if mongodb_url is None:
            from testcontainers.mongodb import MongoDbContainer

            mongo = MongoDbContainer("mongo:7").start()
            cleanups.append(mongo.stop)
            mongodb_url = mongo.get_connection_url()
    if rabbitmq_url is None:
        ensure_rabbitmq(LOCAL_RABBITMQ)
        rabbitmq_url = LOCAL_RABBITMQ
    if mongodb_url is None:
        run_dir = tmp_path_factory.mktemp("secantus")
        port = free_port()
        secantus = start_secantus(port, run_dir / "data", run_dir, name=f"secantus-{port}")
        cleanups.append(secantus.stop)
        mongodb_url = f"mongodb://127.0.0.1:{port}/"
    yield Infra(rabbitmq_url, mongodb_url)
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture
def namespace() -> str:
    """A namespace per test: its own exchanges, queues and databases, so tests never see each other's messages."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def test_issuer() -> Iterator[str]:
    """The test issuer (tests/credentials.py) answering on a local port: its key set, and tokens for the
    services' own clients. Yields its base URL."""
    port = free_port()
    config = uvicorn.Config(ISSUER.app(), host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-issuer", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("the test issuer did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


def identity_settings(issuer_base_url: str, service_name: str) -> dict[str, Any]:
    """A service's settings trusting the test issuer, authentication required, with the service's own client."""
    return {
        "auth_required": True,
        "auth_issuer_url": ISSUER_URL,
        "auth_jwks_url": f"{issuer_base_url}/jwks.json",
        "auth_token_url": f"{issuer_base_url}/token",
        "auth_dev_issuer": True,  # its key set and token endpoint answer on plain HTTP, on this machine
        "auth_client_id": client_id_of(service_name),
        "auth_client_secret": SERVICE_SECRET,
    }


@pytest.fixture
def make_settings(infra: Infra, namespace: str, test_issuer: str) -> Callable[..., Any]:
    def make(settings_class: type[S], **overrides: Any) -> S:
        service_name = overrides.get("service_name") or settings_class.model_fields["service_name"].default
        values = {
            "namespace": namespace,
            "rabbitmq_url": infra.rabbitmq_url,
            "mongodb_url": infra.mongodb_url,
            "retry_base_delay_s": 0.1,
            "shutdown_grace_s": 5,
            **identity_settings(test_issuer, service_name),
            **overrides,
        }
        return settings_class(**values)

    return make


@pytest.fixture
async def running(infra: Infra, namespace: str) -> AsyncIterator[Callable[[Service], Any]]:
    """`await running(service)` (or `async with running(service):`) starts a service against the real
    broker and database. At the end of the test every service is stopped, its queues and databases deleted.
    """
    started: list[Service] = []

    class Run:
        def __init__(self, service: Service) -> None:
            self.service = service

        async def start(self) -> Service:
            await self.service.migrate()  # as `python -m publipost migrate` does before a release
            await self.service.start()
            started.append(self.service)
            return self.service

        def __await__(self) -> Any:
            return self.start().__await__()

        async def __aenter__(self) -> Service:
            return await self.start()

        async def __aexit__(self, *exc: object) -> None:
            return None

    run = Run
    yield run
    for service in started:
        await service.stop()
    connection = await aio_pika.connect(infra.rabbitmq_url)
    async with connection:
        for service in started:
            for name in service.bus.queue_names():
                channel = await connection.channel()
                await channel.queue_delete(name)
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_url)
    for name in await client.list_database_names():
        if name.startswith(f"{namespace}_"):
            await client.drop_database(name)
    await client.close()


@pytest.fixture
async def serve_http() -> AsyncIterator[Callable[[Service], Any]]:
    """`url = await serve_http(service)`: the service's HTTP API on a real port, for services that call it."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def serve(service: Service) -> str:
        port = free_port()
        config = uvicorn.Config(service.http_app(), host="127.0.0.1", port=port, lifespan="off", log_config=None)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        while not server.started:
            await asyncio.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, task in servers:
        server.should_exit = True
        await task


@dataclass
class Mailbox:
    """The SMTP capture server of a test, and what it received."""

    host: str
    port: int
    directory: Path

    def messages(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.directory.glob("*.eml"))]


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    port = free_port()
    controller = start_capture(tmp_path / "mail", port=port)
    yield Mailbox("127.0.0.1", port, tmp_path / "mail")
    controller.stop()


@pytest.fixture
async def libreoffice() -> AsyncIterator[LibreOfficePool]:
    """render-pdf's LibreOffice, one worker, as the service starts it."""
    pool = LibreOfficePool(1, WorkerConfig.from_settings(RenderPdfSettings()))
    await pool.start()
    yield pool
    await pool.stop()
