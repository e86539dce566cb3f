"""One mailing through a local stack of its own while something breaks, and what came out of it.

A scenario starts the stack of `make up` in its own run folder (`.local/faults/<scenario>/`, kept with
its logs until the scenario runs again), namespace and ports, with its own SecantusDB (so that it can be
killed) and an SMTP server of the test's that counts Message-IDs (mail_server.py). It plays the internal
system: merge.requested, then dispatch.requested once the mailing is ready, then waits for
merge.mailing_regrouped. Meanwhile its fault waits for its moment (progress seen on the bus or at the
SMTP server), breaks something and repairs it.

Then it checks, from the services' own answers and the SMTP server's count:
- lost: a record without exactly one final document (its PDF) across the regrouped mailings, without
  exactly one final delivery outcome, or recorded sent and never received;
- duplicated: copies of a Message-ID received beyond the first;
- uncertain: deliveries the server took without confirming (never sent again);
- failed: documents not sent beyond the records planned without an address;
- dead letters in the namespace's dead-letter queues (publipost_bus.dlq);
- every outcome announced (delivery.recorded), and the mailing regrouped once, as the outcomes say.
The time it took is compared with the same mailing without a fault (the session's first scenario):
"seconds to recover" is what the fault cost beyond the outage itself (conftest.py).
"""

import asyncio
import json
import math
import os
import shutil
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import aio_pika
import httpx
from publipost_bus.dlq import DeadLetters, consumer_queues, reason_of
from publipost_contracts import DispatchRequested, MergeRequested
from publipost_localstack import dev_issuer
from publipost_localstack.processes import free_port, free_port_base, start_secantus
from publipost_localstack.records import letter_record
from publipost_localstack.stack import REPO, SERVICES, Stack, StackConfig

from tests.faults.mail_server import MailServer
from tests.support import TcpProxy

TENANT = "faults"
# A person of the tenant with every role, as the stack's development issuer signs them.
PERSON_ROLES = ["admin", "operator", "viewer", "integrator"]
TEMPLATE = REPO / "samples" / "letter.docx"
RUNS = REPO / ".local" / "faults"
# This machine's environment sets PYTHONDONTWRITEBYTECODE: each service process then compiled every
# module it imports (about 2 s of CPU each, 12 s of a stack's start on 2 cores). The stacks keep the
# compiled modules here instead, outside the source tree.
BYTECODE = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(REPO / ".local" / "pycache")}
STALL_S = 90.0  # a mailing with no progress at all for this long is stuck (the slowest repair takes ~60 s)
NO_ADDRESS_EVERY = 50
RESULTS: list["Row"] = []  # every scenario's row, for the table printed at the end of the session
# Progress on the bus, each item keyed so that a redelivered copy is not new work.
PROGRESS = {
    "render.requested": lambda body: ("render.requested", body["mailing_id"], body["chunk"]),
    "documents.rendered": lambda body: ("documents.rendered", body["mailing_id"], body["chunk"]),
    "merge.completed": lambda body: ("merge.completed", body["mailing_id"]),
    "delivery.recorded": lambda body: ("delivery.recorded", body["dispatch_id"], body["document_id"]),
    "document.sent": lambda body: ("document.sent", body["dispatch_id"], body["document_id"]),
    "dispatch.paused": lambda body: ("dispatch.paused", body["event_id"]),
    "dispatch.completed": lambda body: ("dispatch.completed", body["dispatch_id"]),
    "merge.mailing_regrouped": lambda body: ("merge.mailing_regrouped", body["dispatch_id"]),
    "merge.rejected": lambda body: ("merge.rejected", body["event_id"]),
}


def records(count: int) -> list[dict[str, Any]]:
    """The sample letter's fields, one client each; every 50th has no address (its document is not sent)."""
    return [
        letter_record(
            n,
            record_id=record_id(n),
            document_number=f"INV-F-{n:05d}",
            email=None if n % NO_ADDRESS_EVERY == NO_ADDRESS_EVERY - 1 else f"client{n}@example.test",
        )
        for n in range(count)
    ]


def record_id(n: int) -> str:
    return f"rec-{n:05d}"


def planned_not_sent(count: int) -> int:
    return sum(1 for n in range(count) if n % NO_ADDRESS_EVERY == NO_ADDRESS_EVERY - 1)


class FaultStack(Stack):
    """The local stack with its own SecantusDB, and per service an environment of its own (say, a broker
    URL that goes through a relay the test cuts)."""

    def __init__(self, config: StackConfig, service_env: dict[str, dict[str, str]]) -> None:
        super().__init__(config)
        self.service_env = service_env

    def start_service(self, service: str) -> int:
        module = f"publipost_{service.replace('-', '_')}.app"
        env = {**self.config.service_env(service), **self.service_env.get(service, {})}
        return self.process(service).start([sys.executable, "-m", module], env=env)

    def start_database(self) -> None:
        """SecantusDB and the development issuer side by side: each takes about 2 s to answer (`up` then
        finds the issuer running)."""
        with ThreadPoolExecutor(2) as pool:
            started = [pool.submit(super().start_database)]
            if self.config.dev_issuer:
                started.append(pool.submit(super().start_issuer))
            for future in started:
                future.result()

    def down(self) -> None:
        """Every service stopped at once (each finishes its in-flight messages), then what they use."""
        with ThreadPoolExecutor(len(SERVICES)) as pool:
            list(pool.map(lambda name: self.process(name).stop(), SERVICES))
        for name in ("dev-issuer", "smtp-capture", "secantusdb"):
            self.process(name).stop()

    def kill(self, name: str) -> None:
        """kill -9 of the process and its group (a service's own children), and wait until it is gone."""
        pid = self.process(name).pid()
        assert pid is not None, f"{name} is not running"
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.process(name).pid() is not None:
            assert time.monotonic() < deadline, f"{name} survived kill -9"
            time.sleep(0.02)

    def restart_database(self) -> None:
        """SecantusDB again, on the same storage folder and port."""
        start_secantus(self.config.mongodb_port, self.config.run_dir / "secantus", self.config.run_dir)


class Timeline:
    """Every progress event of the namespace, with the time it arrived (time.monotonic())."""

    def __init__(self, rabbitmq_url: str, namespace: str) -> None:
        self._url = rabbitmq_url
        self._exchange = f"{namespace}.events"
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(self._exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        for routing_key in PROGRESS:
            await queue.bind(exchange, routing_key=routing_key)
        await queue.consume(self._on_message, no_ack=True)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        body = json.loads(message.body)
        self.events.append((time.monotonic(), body["type"], body))

    def of(self, event_type: str, before: float | None = None) -> list[dict[str, Any]]:
        return [body for at, kind, body in self.events if kind == event_type and (before is None or at < before)]

    def latest(self) -> float:
        return max((at for at, _, _ in self.events), default=0.0)


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    records: int
    lost: int = 0
    duplicated: int = 0
    uncertain: int = 0
    failed: int = 0  # not sent beyond the records planned without an address (uncertain ones apart)
    dead_letters: int = 0
    outage_s: float = 0.0  # from the fault to its repair (a process ready again, a link restored)
    total_s: float | None = None  # merge.requested → merge.mailing_regrouped
    window_ms: tuple[float, float, float] | None = None  # an e-mail at the server → its sent record: median, p90, max
    problems: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class Fault:
    """What breaks: `inject(run)` waits for its moment, then calls run.broken() and run.repaired()."""

    inject: Callable[["Run"], Awaitable[None]]
    # Whether dispatch.requested waits until the fault says so (run.dispatch_allowed).
    hold_dispatch: bool = False
    # docs/dispatch.md, "The window": a dispatch killed between the server's 250 and the group commit that
    # records it sends those e-mails again, with the same Message-ID. Such copies are counted, not refused;
    # a copy that arrives after its record is refused whatever the scenario.
    window_copies_expected: bool = False


class Run:
    """One scenario: its stack, SMTP server and broker relay, and the mailing it sends."""

    def __init__(
        self,
        scenario: str,
        slug: str,
        rabbitmq_url: str,
        count: int,
        *,
        env: dict[str, str] | None = None,
        broker_relay_for: str | None = None,
        teardowns: list[asyncio.Task[None]] | None = None,
    ) -> None:
        self.scenario = scenario
        self.count = count
        self.rabbitmq_url = rabbitmq_url
        self.mail = MailServer()
        self.broker_relay_for = broker_relay_for
        self.broker_relay: TcpProxy | None = None
        self.config = StackConfig(
            run_dir=RUNS / slug,
            namespace="f" + uuid.uuid4().hex[:10],
            rabbitmq_url=rabbitmq_url,
            mongodb_url=None,
            mongodb_port=free_port(),
            smtp_port=self.mail.port,
            smtp_capture=False,
            http_port_base=free_port_base(len(SERVICES) + 1),
            extra_env={"PUBLIPOST_LOG_LEVEL": "INFO", **BYTECODE, **(env or {})},
        )
        self.stack = FaultStack(self.config, {})
        self.timeline = Timeline(rabbitmq_url, self.config.namespace)
        self.row = Row(scenario, count)
        self.fault: Fault | None = None
        self.started = time.monotonic()
        self.fault_started: float | None = None
        self.fault_ended: float | None = None
        self.dispatch_allowed = asyncio.Event()
        self.headers = {"X-Tenant-Id": TENANT}  # and the bearer token of a person of the tenant, once up
        self.notes: list[str] = []
        self.cleanups: list[Callable[[], None]] = []  # run first on the way out (a process the fault left)
        self.mailing_id: str | None = None
        self.dispatch_id: str | None = None
        self.email_template_id: str | None = None
        self._exit = AsyncExitStack()
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        # Where the stack's stopping goes when the caller does not wait for it (the next scenario's stack
        # starts meanwhile: stopping is mostly waiting for processes to exit).
        self._teardowns = teardowns

    # --- the stack ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        shutil.rmtree(self.config.run_dir, ignore_errors=True)
        self.mail.handler.save_dir = self.config.run_dir / "mail"
        self.mail.start()
        self._exit.callback(self.mail.stop)
        if self.broker_relay_for is not None:
            target = self.rabbitmq_url.split("@")[-1].rstrip("/")
            self.broker_relay = await self._exit.enter_async_context(TcpProxy(target))
            relayed = self.rabbitmq_url.replace(target, f"127.0.0.1:{self.broker_relay.port}")
            self.stack.service_env[self.broker_relay_for] = {"RABBITMQ_URL": relayed}
        self._exit.push_async_callback(self._down)
        await self.timeline.start()  # declares the exchange, so nothing the services publish is missed
        self._exit.push_async_callback(self.timeline.stop)
        await asyncio.to_thread(self.stack.up)
        if self.config.dev_issuer:
            issuer = dev_issuer.build(self.config.issuer_dir, self.config.issuer_url)
            bearer = issuer.issue(f"faults:{TENANT}", dev_issuer.PUBLIC_CLIENT, PERSON_ROLES, TENANT)
            self.headers["Authorization"] = f"Bearer {bearer}"
        self._connection = await aio_pika.connect_robust(self.rabbitmq_url)
        self._exit.push_async_callback(self._connection.close)
        self._exit.callback(lambda: [cleanup() for cleanup in self.cleanups])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._teardowns is None:
            await self._exit.aclose()
        else:
            self._teardowns.append(asyncio.create_task(self._exit.aclose()))

    async def _down(self) -> None:
        await asyncio.to_thread(self.stack.down)
        await self.stack.delete_queues()
        if not self.row.problems:  # the logs stay; the database's files go
            shutil.rmtree(self.config.run_dir / "secantus", ignore_errors=True)

    # --- faults ------------------------------------------------------------------------------

    def broken(self, what: str) -> None:
        self.fault_started = time.monotonic()
        self.notes.append(f"{what} after {self.progress_text()}")

    def repaired(self, what: str | None = None) -> None:
        self.fault_ended = time.monotonic()
        assert self.fault_started is not None
        self.row.outage_s = round(self.fault_ended - self.fault_started, 1)
        if what:
            self.notes.append(f"{what} {self.row.outage_s:.1f} s later")

    async def kill_and_restart(self, service: str) -> None:
        """kill -9, started again at once, back when it answers ready."""
        await asyncio.to_thread(self.stack.kill, service)
        self.broken(f"{service} killed")
        await asyncio.to_thread(self.stack.start_service, service)
        await asyncio.to_thread(self.stack.wait_ready, service, 120)
        self.repaired("ready again")

    async def kill_and_restart_database(self) -> None:
        await asyncio.to_thread(self.stack.kill, "secantusdb")
        self.broken("SecantusDB killed")
        await asyncio.to_thread(self.stack.restart_database)
        self.repaired("answering again")

    async def cut_broker(self, seconds: float) -> None:
        assert self.broker_relay is not None
        self.broker_relay.cut()
        self.broken(f"{self.broker_relay_for}'s broker link cut")
        await asyncio.sleep(seconds)
        self.broker_relay.restore()
        self.repaired()

    # --- progress ----------------------------------------------------------------------------

    def docx_asked(self) -> int:
        return sum(len(b["documents"]) for b in _unique(self.timeline.of("render.requested"), "chunk"))

    def pdfs_converted(self) -> int:
        return sum(len(b["results"]) for b in _unique(self.timeline.of("documents.rendered"), "chunk"))

    def emails_received(self) -> int:
        return self.mail.handler.count()

    def outcomes_announced(self) -> int:
        return len({b["document_id"] for b in self.timeline.of("delivery.recorded")})

    def progress_text(self) -> str:
        return (
            f"{self.docx_asked()} DOCX asked, {self.pdfs_converted()} PDFs, {self.emails_received()} e-mails "
            f"received, {self.outcomes_announced()} outcomes"
        )

    async def until(self, predicate: Callable[[], bool], timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.scenario}: the fault's moment never came ({self.progress_text()})")
            await asyncio.sleep(0.02)

    # --- the internal system -----------------------------------------------------------------

    async def publish(self, event: Any) -> None:
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            f"{self.config.namespace}.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        await exchange.publish(
            aio_pika.Message(
                event.model_dump_json().encode(),
                content_type="application/json",
                message_id=str(event.event_id),
                correlation_id=event.correlation_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                # Who publishes: RabbitMQ checks it against the connection's user, consumers against the
                # publishers they accept (the services' own user may act for any tenant).
                user_id=unquote(urlsplit(self.rabbitmq_url).username or "guest"),
            ),
            routing_key=event.routing_key,
        )
        await channel.close()

    async def prepare(self) -> str:
        """The sample letter registered, and an e-mail template (used by the dispatch)."""
        async with httpx.AsyncClient(base_url=self.config.url("template"), headers=self.headers, timeout=60) as http:
            uploaded = await http.post(
                "/templates",
                data={"name": "Premium notice", "custom_fields": "signatory"},
                files={"file": ("letter.docx", TEMPLATE.read_bytes())},
            )
            uploaded.raise_for_status()
            text = await http.post(
                "/email-templates",
                json={
                    "name": "Premium notice",
                    "subject": "Premium notice {document_number} - {client_name}",
                    "body_text": "Dear {client_name},\n\nPlease find attached your premium notice {document_number}.\n",
                },
            )
            text.raise_for_status()
        self.email_template_id = text.json()["id"]
        return uploaded.json()["id"]

    async def mailing(self, fault: Fault | None, timeout_s: float = 240) -> Row:
        self.fault = fault
        if fault is None or not fault.hold_dispatch:
            self.dispatch_allowed.set()
        template_id = await self.prepare()
        injected = asyncio.create_task(fault.inject(self)) if fault is not None else None
        self.started = time.monotonic()
        try:
            await asyncio.wait_for(self._drive(template_id, injected), timeout_s)
            if injected is not None:
                await injected  # its errors are the test's
        except TimeoutError as stalled:
            why = str(stalled) or f"not regrouped within {timeout_s:.0f}s"
            self.row.problems.append(f"stuck: {why} ({self.progress_text()})")
        finally:
            if injected is not None and not injected.done():
                injected.cancel()
        if regrouped_at := [at for at, kind, _ in self.timeline.events if kind == "merge.mailing_regrouped"]:
            self.row.total_s = round(regrouped_at[0] - self.started, 1)
        await self.check()
        self.row.note = "; ".join(self.notes)
        RESULTS.append(self.row)
        return self.row

    async def _drive(self, template_id: str, injected: asyncio.Task[None] | None) -> None:
        correlation_id = str(uuid.uuid4())
        await self.publish(
            MergeRequested(
                tenant_id=TENANT,
                correlation_id=correlation_id,
                request_id=f"faults-{uuid.uuid4().hex[:8]}",
                template_id=template_id,
                name="Premium notices (faults)",
                records=records(self.count),
                custom_fields={"signatory": "Claire Martin, Customer Service"},
                output="pdf",
            )
        )
        completed = await self._next("merge.completed", injected)
        assert completed["status"] == "ready", completed
        self.mailing_id = completed["mailing_id"]
        await self.dispatch_allowed.wait()
        self.dispatch_id = str(uuid.uuid4())
        await self.publish(
            DispatchRequested(
                tenant_id=TENANT,
                correlation_id=correlation_id,
                dispatch_id=self.dispatch_id,
                mailing_id=self.mailing_id,
                email_template_id=self.email_template_id,
            )
        )
        await self._next("merge.mailing_regrouped", injected)

    async def _next(self, event_type: str, injected: asyncio.Task[None] | None) -> dict[str, Any]:
        while not (found := self.timeline.of(event_type)):
            latest = max([self.timeline.latest(), *(at for at, _, _ in self.mail.handler.arrivals()[-1:])])
            if time.monotonic() - max(latest, self.fault_ended or 0, self.started) > STALL_S:
                raise TimeoutError(f"nothing moved for {STALL_S:.0f}s")
            if rejected := self.timeline.of("merge.rejected"):
                raise AssertionError(f"merge rejected: {rejected[0]['problems']}")
            if injected is not None and injected.done() and injected.exception() is not None:
                raise injected.exception()  # type: ignore[misc]
            await asyncio.sleep(0.05)
        return found[0]

    # --- the verdict -------------------------------------------------------------------------

    async def check(self) -> None:
        row = self.row
        documents = await self._documents()
        outcomes = await self._deliveries()
        arrivals = self.mail.handler.arrivals()
        copies = Counter(message_id for _, _, message_id in arrivals)
        arrived: dict[str, list[float]] = {}
        for _, wall, message_id in arrivals:
            arrived.setdefault(message_id, []).append(wall)
        row.duplicated = sum(n - 1 for n in copies.values())
        lost: set[str] = set()

        # One final document per record: one PDF, across the sent and not-sent mailings.
        per_record = Counter(d["record_id"] for d in documents)
        expected = {record_id(n) for n in range(self.count)}
        for record in expected:
            final = [d for d in documents if d["record_id"] == record and d["status"] == "converted"]
            if per_record[record] != 1 or len(final) != 1 or not final[0]["pdf_blob_id"]:
                lost.add(record)
        if extra := set(per_record) - expected:
            row.problems.append(f"documents of records never asked for: {sorted(extra)[:5]}")

        # One final outcome per document; a document recorded sent was received, and not after its record.
        record_of = {d["id"]: d["record_id"] for d in documents}
        per_document = Counter(d["document_id"] for d in outcomes)
        unfinished: dict[str, list[str]] = defaultdict(list)
        lost |= {record for document_id, record in record_of.items() if per_document[document_id] != 1}
        for delivery in outcomes:
            record = record_of.get(delivery["document_id"], delivery["document_id"])
            message_id = delivery.get("message_id") or ""
            if delivery["state"] not in ("sent", "failed", "uncertain"):
                unfinished[delivery["state"]].append(delivery["document_number"])
                lost.add(record)
            elif delivery["state"] == "sent" and not copies[message_id]:
                row.problems.append(f"{delivery['document_number']} recorded sent, never received")
                lost.add(record)
            elif delivery["state"] == "uncertain" and copies[message_id] > 1:
                row.problems.append(f"{delivery['document_number']} uncertain, and sent again")
            if delivery["state"] == "sent" and delivery.get("finished_at"):
                # The database keeps milliseconds, cut (not rounded): an arrival 0.6 ms into the millisecond
                # of its record is not after it. Compare whole milliseconds, each cut the same way.
                recorded = datetime.fromisoformat(delivery["finished_at"]).replace(tzinfo=UTC).timestamp()
                if late := [
                    wall - recorded
                    for wall in arrived.get(message_id, [])
                    if math.floor(wall * 1000) > round(recorded * 1000)
                ]:
                    row.problems.append(
                        f"{delivery['document_number']} received {', '.join(f'{s * 1000:.1f}' for s in late)} ms after its "
                        f"sent record ({delivery['finished_at']}, attempts {delivery['attempts']}, "
                        f"{len(arrived[message_id])} copies, reply {delivery.get('smtp_reply')!r})"
                    )
        for state, numbers in unfinished.items():
            row.problems.append(f"{len(numbers)} deliveries left {state}: {numbers[:5]}")
        recorded_at = {
            d["message_id"]: datetime.fromisoformat(d["finished_at"]).replace(tzinfo=UTC).timestamp()
            for d in outcomes
            if d["state"] == "sent" and d.get("finished_at") and arrived.get(d.get("message_id") or "")
        }
        if waits := sorted(at - max(arrived[message_id]) for message_id, at in recorded_at.items()):
            # docs/dispatch.md, "The window": from the server having the e-mail to its sent record.
            row.window_ms = (1000 * waits[len(waits) // 2], 1000 * waits[len(waits) * 9 // 10], 1000 * waits[-1])
        row.lost = len(lost)
        if lost:
            row.problems.append(f"{len(lost)} records lost: {sorted(lost)[:8]}")
        if row.duplicated:
            twice = self._duplicates(outcomes, copies)
            if self.fault is not None and self.fault.window_copies_expected:
                self.notes.append(f"sent twice in the window before their record: {twice}")
            else:
                row.problems.append(f"{row.duplicated} e-mails received twice: {twice}")

        states = Counter(d["state"] for d in outcomes)
        row.uncertain = states["uncertain"]
        row.failed = max(0, states["failed"] - planned_not_sent(self.count))
        if row.failed:
            reasons = Counter((d.get("reason") or "")[:80] for d in outcomes if d["state"] == "failed")
            self.notes.append(f"failed: {dict(reasons)}")
        announced = {b["document_id"] for b in self.timeline.of("delivery.recorded")}
        final = [d for d in outcomes if d["state"] in ("sent", "failed", "uncertain")]
        if unannounced := [d["document_number"] for d in final if d["document_id"] not in announced]:
            row.problems.append(f"{len(unannounced)} outcomes never announced (delivery.recorded): {unannounced[:5]}")

        # The mailing regrouped once, as the outcomes say.
        completed = {e["event_id"] for e in self.timeline.of("dispatch.completed")}
        regrouped = self.timeline.of("merge.mailing_regrouped")
        if len(completed) > 1 or len({e["event_id"] for e in regrouped}) > 1:
            row.problems.append("dispatch.completed or merge.mailing_regrouped announced twice")
        if not regrouped:
            row.problems.append("the mailing was never regrouped")
        elif (regrouped[0]["sent"], regrouped[0]["not_sent"]) != (states["sent"], self.count - states["sent"]):
            r = regrouped[0]
            row.problems.append(f"regrouped as sent {r['sent']} / not sent {r['not_sent']}; outcomes {dict(states)}")

        row.dead_letters, reasons = await self.dead_letters()
        if row.dead_letters:
            row.problems.append(f"dead letters: {reasons}")

    def _duplicates(self, outcomes: list[dict[str, Any]], copies: Counter[str]) -> str:
        """Which documents came twice, and whether their outcome had been announced before the fault."""
        announced_before = {
            b["document_id"]
            for b in self.timeline.of("delivery.recorded", before=self.fault_started)
            if self.fault_started is not None
        }
        twice = [d for d in outcomes if copies[d.get("message_id") or ""] > 1]
        return ", ".join(
            f"{d['document_number']} ×{copies[d['message_id']]} (attempts {d['attempts']}"
            f"{', announced sent before the fault' if d['document_id'] in announced_before else ''})"
            for d in twice[:8]
        )

    async def _documents(self) -> list[dict[str, Any]]:
        """The documents of the regrouped mailings (sent, not sent), else of the mailing itself."""
        mailing_ids = []
        if regrouped := self.timeline.of("merge.mailing_regrouped"):
            mailing_ids = [m for m in (regrouped[0]["sent_mailing_id"], regrouped[0]["not_sent_mailing_id"]) if m]
        elif self.mailing_id is not None:
            mailing_ids = [self.mailing_id]
        items = []
        async with httpx.AsyncClient(base_url=self.config.url("merge"), headers=self.headers, timeout=30) as http:
            for mailing_id in mailing_ids:
                items += await _pages(http, f"/mailings/{mailing_id}/documents")
        return items

    async def _deliveries(self) -> list[dict[str, Any]]:
        if self.dispatch_id is None:
            return []
        async with httpx.AsyncClient(base_url=self.config.url("dispatch"), headers=self.headers, timeout=30) as http:
            return await _pages(http, f"/dispatches/{self.dispatch_id}/deliveries")

    async def dead_letters(self) -> tuple[int, dict[str, list[str]]]:
        """Messages in the namespace's dead-letter queues, with their reasons (publipost_bus.dlq)."""
        assert self._connection is not None
        dead = DeadLetters(self._connection, self.config.namespace)
        total, reasons = 0, {}
        for queue in consumer_queues(self.config.namespace):
            if count := await dead.count(f"{queue}.dlq"):
                total += count
                async with dead.taken(f"{queue}.dlq") as (_, messages):
                    reasons[queue] = [reason_of(m)[:300] for m in messages[:5]]
        return total, reasons

    def log_tail(self, name: str, lines: int = 40) -> str:
        return self.stack.log_tail(name, lines)


async def _pages(http: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    items, after = [], -1
    while True:
        response = await http.get(path, params={"after": after, "limit": 1000})
        response.raise_for_status()
        page = response.json()
        items += page["items"]
        if page["next_after"] is None:
            return items
        after = page["next_after"]


def _unique(bodies: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return list({body[key]: body for body in bodies}.values())
