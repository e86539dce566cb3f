"""A consumer rides out a database outage: its duplicate check, handler and mark are retried like any
transient failure, and readiness says the database is down while it is.

Each test runs its own SecantusDB and kills it (SIGKILL), then starts it again on the same port and
storage, as an SRE would see a database pod die and come back.
"""

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Literal

import aio_pika
import httpx
import pytest
from publipost_bus import Bus, broker_user
from publipost_contracts import Event
from publipost_localstack.processes import Background, free_port, start_secantus
from publipost_runtime import Service
from publipost_settings import ServiceSettings
from publipost_storage import Storage

from tests.support import wait_until


class Probe(Event):
    type: Literal["test.outage-probe"] = "test.outage-probe"


class Database:
    """A SecantusDB of the test's own, that the test can kill and bring back."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: Background = self.start()

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> Background:
        return start_secantus(self.port, self.folder / "data", self.folder, name="secantus-outage")

    def kill(self) -> None:
        pid = self.process.pid()
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        while self.process.pid() is not None:
            time.sleep(0.05)

    def restart(self) -> None:
        self.process = self.start()


@pytest.fixture
def database(tmp_path):
    database = Database(tmp_path)
    yield database
    database.process.stop()


@pytest.fixture
def probe(make_settings, database):
    """A service consuming Probe with `handler`, its database the test's own SecantusDB."""

    def build(handler) -> Service:
        settings = make_settings(
            ServiceSettings, service_name="probe", mongodb_url=database.url, query_log=None, retry_base_delay_s=0.2
        )
        bus = Bus(settings)
        bus.consumer(Probe)(handler)
        return Service(settings=settings, bus=bus, storage=Storage.for_service(settings))

    return build


async def dead_letters(infra, service: Service) -> int:
    connection = await aio_pika.connect(infra.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{service.bus._queues[0]}.dlq", passive=True)
        return queue.declaration_result.message_count


async def publish(infra, namespace: str, event: Event) -> None:
    connection = await aio_pika.connect(infra.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{namespace}.events")
        message = aio_pika.Message(
            event.model_dump_json().encode(),
            message_id=str(event.event_id),
            content_type="application/json",
            user_id=broker_user(infra.rabbitmq_url),  # who publishes, as every publisher says (publipost_bus)
        )
        await exchange.publish(message, routing_key=event.type)


def probe_event() -> Probe:
    return Probe(tenant_id="acme", correlation_id="outage")


async def test_a_message_arriving_while_the_database_is_down_is_retried_and_handled_once(
    probe, running, database, infra, namespace
):
    handled: list[str] = []
    service: Service

    async def handler(event: Probe) -> None:
        await service.storage.db["effects"].update_one(
            {"_id": str(event.event_id)}, {"$setOnInsert": {"done": True}}, upsert=True
        )
        handled.append(str(event.event_id))

    service = await running(probe(handler))
    event = probe_event()
    database.kill()
    await publish(infra, namespace, event)
    await asyncio.sleep(4)  # the duplicate check fails, and fails again on the first retries
    database.restart()

    await wait_until(lambda: handled, timeout=40)
    await asyncio.sleep(1)  # time for a wrongly repeated delivery to show
    assert handled == [str(event.event_id)]
    assert await service.storage.db["effects"].count_documents({}) == 1
    assert await service.bus.inbox.already_processed(service.bus._queues[0], str(event.event_id))
    assert await dead_letters(infra, service) == 0


async def test_a_mark_that_fails_because_the_database_died_is_retried_not_dead_lettered(
    probe, running, database, infra, namespace
):
    runs: list[str] = []
    effects_stored = asyncio.Event()
    database_killed = asyncio.Event()
    service: Service

    async def handler(event: Probe) -> None:
        await service.storage.db["effects"].update_one(
            {"_id": str(event.event_id)}, {"$setOnInsert": {"done": True}}, upsert=True
        )
        runs.append(str(event.event_id))
        effects_stored.set()
        await database_killed.wait()  # the database dies between the handler's effects and the mark

    service = await running(probe(handler))
    event = probe_event()
    await publish(infra, namespace, event)
    await asyncio.wait_for(effects_stored.wait(), 30)
    await asyncio.to_thread(database.kill)
    database_killed.set()
    await asyncio.sleep(4)
    await asyncio.to_thread(database.restart)

    await wait_until(lambda: service.bus.inbox.already_processed(service.bus._queues[0], str(event.event_id)), 60)
    assert await dead_letters(infra, service) == 0
    assert set(runs) == {str(event.event_id)}  # run again after the failed mark, its effects written once
    assert await service.storage.db["effects"].count_documents({}) == 1


async def test_readiness_names_the_database_while_it_is_down_and_answers_within_a_probe_timeout(
    probe, running, database
):
    async def handler(event: Probe) -> None:
        return None

    service = await running(probe(handler))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://s") as http:

        async def readyz() -> httpx.Response:
            # A Kubernetes probe gives up after 1 s by default: an answer later than that tells nothing
            # (the pings wait 0.8 s at most; the rest is room for a busy test machine).
            started = time.perf_counter()
            response = await asyncio.wait_for(http.get("/readyz"), timeout=1.5)
            assert time.perf_counter() - started < 1.5
            return response

        ready = await readyz()
        assert ready.status_code == 200 and ready.json()["down"] == []

        await asyncio.to_thread(database.kill)
        await asyncio.sleep(1.1)  # an answer is kept a second, so that probes do not hammer the database
        for _ in range(3):  # the first answer after the kill, and the ones after it (no connection left to fail)
            answer = await readyz()
            assert answer.status_code == 503
            assert answer.json()["down"] == ["database"] and answer.json()["checks"]["broker"] is True
            await asyncio.sleep(0.5)

        await asyncio.to_thread(database.restart)
        await wait_until(lambda: _ready(readyz), timeout=30)
        assert (await readyz()).json() == {
            "ready": True, "checks": {"database": True, "broker": True, "schema": True}, "down": []
        }


async def _ready(readyz) -> bool:
    return (await readyz()).status_code == 200
