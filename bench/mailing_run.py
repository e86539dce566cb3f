"""One mailing end to end on a local stack of its own, as an internal system drives it; shared by the
benchmarks that time the whole flow (bench_e2e.py, bench_aged.py).

The stack is the one `make up` starts (six services, SecantusDB, RabbitMQ), in its own run folder,
namespace and ports, sending to Postfix's smtp-sink so the SMTP server is never what is measured.
"""

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from measure import ProcessWatch, Usage, rabbitmq_pid
from publipost_bus import broker_user
from publipost_contracts import (
    DispatchCompleted,
    DispatchRequested,
    MailingRegrouped,
    MergeCompleted,
    MergeRejected,
    MergeRequested,
    RenderRequested,
)
from publipost_localstack.processes import free_port, free_port_base
from publipost_localstack.records import letter_record
from publipost_localstack.stack import REPO, SERVICES, Stack, StackConfig
from publipost_storage import BlobStore, Storage

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"
TEMPLATE = REPO / "samples" / "letter.docx"
NO_ADDRESS_EVERY = 400  # one record in 400 has no address anywhere, so both regrouped mailings exist
STAGES = ("docx", "pdf", "dispatch", "regroup")


def records(count: int, tag: str) -> list[dict[str, Any]]:
    """The sample letter's fields, one client each; `tag` keeps two mailings' numbers apart."""
    return [
        letter_record(
            n,
            record_id=f"{tag}-{n:06d}",
            document_number=f"INV-{tag}-{n:06d}",
            email=None if n % NO_ADDRESS_EVERY == NO_ADDRESS_EVERY - 1 else f"client{n}@example.test",
            digits=6,
        )
        for n in range(count)
    ]


class BenchStack:
    """A local stack in `run_dir` sending to the SMTP server on `smtp_port`."""

    def __init__(self, run_dir: Path, smtp_port: int, *, namespace: str | None = None, **extra_env: str) -> None:
        self.config = StackConfig(
            run_dir=run_dir,
            namespace=namespace or "bench" + uuid.uuid4().hex[:8],
            mongodb_port=free_port(),
            smtp_port=smtp_port,
            smtp_capture=False,
            http_port_base=free_port_base(len(SERVICES)),
            extra_env={"PUBLIPOST_LOG_LEVEL": "WARNING", **extra_env},
        )
        self.stack = Stack(self.config)

    def up(self) -> None:
        self.stack.up()

    def down(self) -> None:
        self.stack.down()
        asyncio.run(self.stack.delete_queues())

    def pids(self) -> dict[str, int]:
        """Each service's process, the database and RabbitMQ."""
        pids = {name: pid for name in (*SERVICES, "secantusdb") if (pid := self.stack.process(name).pid()) is not None}
        if (rabbitmq := rabbitmq_pid()) is not None:
            pids["rabbitmq"] = rabbitmq
        return pids

    def storage(self) -> Storage:
        return Storage(self.config.database_url, f"{self.config.namespace}_bench", f"{self.config.namespace}_blobs")


@dataclass
class Outcome:
    stages: dict[str, float]
    total_s: float
    sent: int
    failed: int
    regrouped: dict[str, Any]


class InternalSystem:
    """Plays the system that asks for the mailing: merge.requested, then dispatch.requested once it is ready."""

    def __init__(self, bench: BenchStack, tenant: str) -> None:
        self.bench = bench
        self.tenant = tenant
        self.headers = bench.config.credentials(tenant)  # a person of that tenant, signed by the stack's issuer
        self.broker = RabbitBroker(RABBITMQ, log_level=10)
        self.exchange = RabbitExchange(f"{bench.config.namespace}.events", type=ExchangeType.TOPIC, durable=True)
        self.seen: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        watched = (MergeCompleted, MergeRejected, RenderRequested, DispatchCompleted, MailingRegrouped)
        for event_type in watched:
            queue = RabbitQueue(
                f"bench-{uuid.uuid4().hex[:8]}-{event_type.routing_key}",
                auto_delete=True,
                exclusive=True,
                routing_key=event_type.routing_key,
            )
            self.broker.subscriber(queue, self.exchange)(self._on_event)

    async def _on_event(self, body: dict[str, Any]) -> None:
        await self.seen.put((time.perf_counter(), body))

    async def __aenter__(self) -> Self:
        await self.broker.start()
        async with httpx.AsyncClient(base_url=self.bench.config.url("template"), timeout=60) as http:
            uploaded = await http.post(
                "/templates",
                headers=self.headers,
                data={"name": "Premium notice", "custom_fields": "signatory"},
                files={"file": ("letter.docx", TEMPLATE.read_bytes())},
            )
            uploaded.raise_for_status()
        self.template_id = uploaded.json()["id"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.broker.stop()

    async def publish(self, event: Any) -> None:
        await self.broker.publish(
            event.model_dump_json().encode(),
            exchange=self.exchange,
            routing_key=event.routing_key,
            message_id=str(event.event_id),
            correlation_id=event.correlation_id,
            content_type="application/json",
            user_id=broker_user(RABBITMQ),  # who publishes, which the services check (README, Messaging rules)
            persist=True,
        )

    async def records_file(self, rows: list[dict[str, Any]]) -> str:
        """Many records travel by reference: NDJSON in GridFS, as the README tells integrators."""
        storage = self.bench.storage()
        try:
            blobs: BlobStore = storage.blobs
            data = "".join(json.dumps(row) + "\n" for row in rows).encode()
            return await blobs.put(data, "records.ndjson", "application/x-ndjson", tenant_id=self.tenant)
        finally:
            await storage.close()

    async def mailing(self, count: int, tag: str, timeout_s: float = 1800) -> Outcome:
        rows = records(count, tag)
        correlation_id = str(uuid.uuid4())
        source: dict[str, Any] = (
            {"records": rows} if count <= 1000 else {"records_file_id": await self.records_file(rows)}
        )
        started = time.perf_counter()
        await self.publish(
            MergeRequested(
                tenant_id=self.tenant,
                correlation_id=correlation_id,
                request_id=f"bench-{tag}-{uuid.uuid4().hex[:8]}",
                template_id=self.template_id,
                name=f"Premium notices {tag}",
                custom_fields={"signatory": "Claire Martin, Customer Service"},
                output="pdf",
                **source,
            )
        )
        marks: dict[str, float] = {}
        asked_for = 0
        deadline = started + timeout_s
        while "regroup" not in marks:
            at, body = await asyncio.wait_for(self.seen.get(), timeout=max(1.0, deadline - time.perf_counter()))
            if body.get("correlation_id") != correlation_id:
                continue
            kind = body["type"]
            if kind == MergeRejected.routing_key:
                raise RuntimeError(f"merge rejected: {body['problems']}")
            if kind == RenderRequested.routing_key:
                # Chunks go to render-pdf as they are rendered: the last one marks the end of rendering.
                asked_for += len(body["documents"])
                if asked_for == count:
                    marks["docx"] = at
            elif kind == MergeCompleted.routing_key and body["status"] == "ready":
                marks["pdf"] = at
                await self.publish(
                    DispatchRequested(
                        tenant_id=self.tenant,
                        correlation_id=correlation_id,
                        dispatch_id=str(uuid.uuid4()),
                        mailing_id=body["mailing_id"],
                        subject="Premium notice {document_number} - {client_name}",
                        body="Dear {client_name},\n\nPlease find attached your premium notice {document_number}.\n",
                    )
                )
            elif kind == DispatchCompleted.routing_key:
                marks["dispatch"] = at
                completed = body
            elif kind == MailingRegrouped.routing_key:
                marks["regroup"] = at
                regrouped = body
        stages, previous = {}, started
        for stage in STAGES:
            stages[stage] = round(marks[stage] - previous, 2)
            previous = marks[stage]
        return Outcome(stages, round(marks["regroup"] - started, 2), completed["sent"], completed["failed"], regrouped)


async def run_mailing(bench: BenchStack, count: int, tenant: str, tag: str) -> tuple[Outcome, Usage]:
    """One mailing of `count` records, with each process's CPU time and peak memory while it ran."""
    watch = ProcessWatch(bench.pids())
    async with InternalSystem(bench, tenant) as system:
        watch.start()
        outcome = await system.mailing(count, tag)
        usage = watch.stop()
    expected_failed = sum(1 for n in range(count) if n % NO_ADDRESS_EVERY == NO_ADDRESS_EVERY - 1)
    if (outcome.sent, outcome.failed) != (count - expected_failed, expected_failed):
        raise RuntimeError(
            f"expected {count - expected_failed} sent / {expected_failed} not sent, got "
            f"{outcome.sent} / {outcome.failed}"
        )
    return outcome, usage


def describe(label: str, outcome: Outcome, usage: Usage) -> None:
    stages = ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in outcome.stages.items())
    print(f"{label}: {outcome.total_s:.1f}s ({stages}); sent {outcome.sent}, not sent {outcome.failed}", flush=True)
    cpu = usage.cpu_s
    print("  CPU s: " + ", ".join(f"{name} {s:.1f}" for name, s in cpu.items()) + f"; all {sum(cpu.values()):.1f}")
    print("  peak RSS MB: " + ", ".join(f"{name} {mb:.0f}" for name, mb in usage.peak_rss_mb.items()), flush=True)
