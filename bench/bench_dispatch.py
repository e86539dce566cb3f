"""dispatch: 1,000 e-mails with a 25 KB PDF each to Postfix's smtp-sink, three ways, in one run.

Target (DESIGN.md, performance targets): dispatch ≥ 80 % of raw pooled aiosmtplib
with EmailMessage-built messages (the ceiling), and ≥ 1.5× the `mailmerge`
command-line tool, all against the same smtp-sink so the server is not the
bottleneck.

- ceiling: aiosmtplib, one connection per worker, kept open; each message built
  with EmailMessage and serialised by send_message.
- mailmerge: the PyPI tool, installed into a temporary venv (never the project's
  lock), on the same recipients, subject, body and PDFs.
- ours: dispatch end to end, from dispatch.requested to dispatch.completed, with
  real RabbitMQ (127.0.0.1:5672), SecantusDB, two dispatch replicas and the
  recipient directory as processes. The 1,000 documents and their PDFs are seeded
  in merge's database and GridFS as merge stores them, and merge's HTTP API serves
  them from this process (merge's consumers do not run, so its regrouping after
  completion does not compete with the next round).

Each is run ROUNDS times, alternating, and the best of each is kept: other work on
the machine (the load average is printed) slows all alike.
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aio_pika
import aiosmtplib
import httpx
import uvicorn
from bson import ObjectId
from fastapi import FastAPI
from measure import cpu_seconds, load, rabbitmq_pid, smtp_sink
from prometheus_client.parser import text_string_to_metric_families
from publipost_bus import Bus
from publipost_contracts import DispatchRequested
from publipost_localstack.processes import Background, ensure_rabbitmq, free_port, start_secantus
from publipost_merge.api import router as merge_router
from publipost_merge.app import build as build_merge
from publipost_merge.domain import document_id_for
from publipost_merge.settings import MergeSettings
from publipost_settings import ServiceSettings
from publipost_storage import NewBlob, Storage

EMAILS = 1_000
PDF_BYTES = 25_000
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
ONLY = os.environ.get("BENCH_ONLY", "ceiling,mailmerge,ours").split(",")  # to look at one of them alone
CONNECTIONS = 4
REPLICAS = 2
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"
SENDER = "Publipost <no-reply@publipost.test>"
SUBJECT = "Invoice {number} - {name}"
BODY = "Dear {name},\nplease find your invoice {number} attached.\n"


def documents() -> list[dict[str, Any]]:
    """Each document its own PDF bytes, so nothing is shared between e-mails that would not be in real life."""
    return [
        {
            "number": f"INV-{n:06d}",
            "name": f"Client {n}",
            "email": f"client{n}@example.test",
            "customer_number": f"C{n:06d}",
            "pdf": b"%PDF-1.4\n" + os.urandom(PDF_BYTES - 15) + b"\n%%EOF\n",
        }
        for n in range(EMAILS)
    ]


# --- ceiling --------------------------------------------------------------------------------


async def ceiling(port: int, docs: list[dict[str, Any]]) -> float:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for doc in docs:
        queue.put_nowait(doc)

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        while not queue.empty():
            doc = queue.get_nowait()
            message = EmailMessage()
            message["From"] = SENDER
            message["To"] = doc["email"]
            message["Subject"] = SUBJECT.format(**doc)
            message.set_content(BODY.format(**doc))
            message.add_attachment(doc["pdf"], maintype="application", subtype="pdf", filename=f"{doc['number']}.pdf")
            await client.send_message(message)
        await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return EMAILS / (time.perf_counter() - started)


# --- mailmerge ------------------------------------------------------------------------------


def install_mailmerge(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run([str(folder / "bin" / "pip"), "install", "-q", "mailmerge"], check=True)
    return folder / "bin" / "mailmerge"


def mailmerge(binary: Path, port: int, docs: list[dict[str, Any]], folder: Path) -> float:
    pdfs = folder / "pdfs"
    pdfs.mkdir(exist_ok=True)
    rows = ["email,name,number,pdf"]
    for doc in docs:
        path = pdfs / f"{doc['number']}.pdf"
        path.write_bytes(doc["pdf"])
        rows.append(f"{doc['email']},{doc['name']},{doc['number']},{path}")
    (folder / "database.csv").write_text("\n".join(rows) + "\n")
    (folder / "template.txt").write_text(
        "TO: {{email}}\nSUBJECT: Invoice {{number}} - {{name}}\n"
        f"FROM: {SENDER}\nATTACHMENT: {{{{pdf}}}}\n\n"
        "Dear {{name}},\nplease find your invoice {{number}} attached.\n"
    )
    (folder / "server.conf").write_text(
        f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nsecurity = Never\nusername = None\nratelimit = 0\n"
    )
    command = [
        str(binary),
        "--no-dry-run",
        "--no-limit",
        "--template",
        str(folder / "template.txt"),
        "--database",
        str(folder / "database.csv"),
        "--config",
        str(folder / "server.conf"),
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=folder)
    return EMAILS / (time.perf_counter() - started)


# --- ours -----------------------------------------------------------------------------------


class Stack:
    """SecantusDB, the recipient directory and the dispatch replicas as processes; merge's HTTP API here."""

    def __init__(self, run_dir: Path, smtp_port: int) -> None:
        self.run_dir = run_dir
        self.namespace = "bench" + uuid.uuid4().hex[:8]
        self.db_port = free_port()
        self.mongodb_url = f"mongodb://127.0.0.1:{self.db_port}/"
        self.smtp_port = smtp_port
        self.merge_port = free_port()
        self.processes: list[Background] = []
        self.dispatch_ports: list[int] = []
        self.merge_server: uvicorn.Server | None = None

    def env(self, port: int) -> dict[str, str]:
        return {
            "RABBITMQ_URL": RABBITMQ,
            "MONGODB_URL": self.mongodb_url,
            "PUBLIPOST_NAMESPACE": self.namespace,
            "PUBLIPOST_HTTP_PORT": str(port),
            "PUBLIPOST_MERGE_URL": f"http://127.0.0.1:{self.merge_port}",
            "PUBLIPOST_SMTP_HOST": "127.0.0.1",
            "PUBLIPOST_SMTP_PORT": str(self.smtp_port),
            "PUBLIPOST_SMTP_CONNECTIONS": str(CONNECTIONS),
            "PUBLIPOST_LOG_LEVEL": "WARNING",
            "PUBLIPOST_PREFETCH": "64",  # dispatch's default; the recipient directory answers as many at once
        }

    async def start(self) -> None:
        ensure_rabbitmq(RABBITMQ)
        self.processes.append(start_secantus(self.db_port, self.run_dir / "data", self.run_dir, name="secantusdb"))
        # No issuer here: merge's stand-in takes the dispatch replicas' calls without credentials (the tenant in
        # X-Tenant-Id), which only a service with authentication off does.
        self.merge_settings = MergeSettings(
            namespace=self.namespace,
            mongodb_url=self.mongodb_url,
            rabbitmq_url=RABBITMQ,
            http_port=self.merge_port,
            auth_required=False,
        )
        merge = build_merge(self.merge_settings)
        await merge.migrate()  # as before a release: the services wait, not ready, for their schema
        migrate = [sys.executable, "-m", "publipost", "migrate", "--service", "recipient-directory", "--service", "dispatch"]
        await asyncio.to_thread(subprocess.run, migrate, env={**os.environ, **self.env(0)}, check=True)
        app = FastAPI()
        app.include_router(merge_router)
        app.state.components = merge.components
        app.state.authenticator = merge.authenticator
        self.merge_server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.merge_port, lifespan="off", log_level="warning")
        )
        self.merge_task = asyncio.create_task(self.merge_server.serve())
        services = [("recipient-directory", "publipost_recipient_directory.app")]
        services += [(f"dispatch-{n}", "publipost_dispatch.app") for n in range(REPLICAS)]
        ports = []
        for name, module in services:
            port = free_port()
            process = Background(name, self.run_dir)
            process.start([sys.executable, "-m", module], env=self.env(port))
            self.processes.append(process)
            ports.append(port)
            if name.startswith("dispatch"):
                self.dispatch_ports.append(port)
        async with httpx.AsyncClient() as http:
            for port in ports:
                for _ in range(300):
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.2)
                else:
                    raise RuntimeError(f"a service on port {port} never became ready; see {self.run_dir}/logs")

    async def db_commands(self) -> Counter[str]:
        """The database commands the dispatch replicas have sent so far, by name (their /metrics)."""
        total: Counter[str] = Counter()
        async with httpx.AsyncClient() as http:
            for port in self.dispatch_ports:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                for family in text_string_to_metric_families(text):
                    if family.name == "publipost_db_commands":
                        for sample in family.samples:
                            if sample.name == "publipost_db_commands_total":
                                total[sample.labels["command"]] += int(sample.value)
        return total

    def pids(self) -> dict[str, int]:
        """The processes that do the work of a dispatch (this one serves merge's API and waits)."""
        pids = {process.name: pid for process in self.processes if (pid := process.pid()) is not None}
        if (rabbitmq := rabbitmq_pid()) is not None:
            pids["rabbitmq"] = rabbitmq
        return pids | {"bench": os.getpid()}

    async def seed(self, docs: list[dict[str, Any]]) -> str:
        """A ready PDF mailing as merge stores it: the mailing, one document per record, the PDFs in GridFS."""
        storage = Storage.for_service(self.merge_settings)
        mailing_id = str(uuid.uuid4())
        await storage.db["mailings"].insert_one(
            {
                "_id": mailing_id,
                "tenant_id": "acme",
                "request_id": mailing_id,
                "correlation_id": mailing_id,
                "name": "Invoices",
                "base_name": "Invoices",
                "template_id": "t",
                "template_version": 1,
                "template_type": "standard",
                "validation_required": False,
                "output": "pdf",
                "side_effects_published": True,
                "status": "ready",
                "expected": len(docs),
                "documents": len(docs),
                "rendered": len(docs),
                "failed": 0,
                "parts": [],
                "combined_blob_id": None,
                "warnings": [],
                "warnings_count": 0,
                "created_at": datetime.now(UTC),
            }
        )
        rows = []
        blob_ids = await self.store_pdfs(storage, docs)
        for index, doc in enumerate(docs):
            document_id = document_id_for(mailing_id, index)
            pdf_blob_id = blob_ids[index]
            rows.append(
                {
                    "_id": document_id,
                    "tenant_id": "acme",
                    "mailing_id": mailing_id,
                    "index": index,
                    "record_id": str(index),
                    "customer_number": doc["customer_number"],
                    "email": doc["email"],
                    "document_number": doc["number"],
                    "recipient_name": doc["name"],
                    "status": "converted",
                    "docx_blob_id": None,
                    "pdf_blob_id": pdf_blob_id,
                    "page_count": 1,
                    "error": None,
                }
            )
        await storage.db["documents"].insert_many(rows)
        await storage.close()
        return mailing_id

    async def store_pdfs(self, storage: Storage, docs: list[dict[str, Any]]) -> list[str]:
        """The PDFs in GridFS as render-pdf stores them, a batch at a time."""
        ids = [str(ObjectId()) for _ in docs]
        for first in range(0, len(docs), 100):
            await storage.blobs.put_many(
                [
                    NewBlob(
                        ids[i],
                        docs[i]["pdf"],
                        f"{docs[i]['number']}.pdf",
                        {"content_type": "application/pdf", "tenant_id": "acme"},
                    )
                    for i in range(first, min(len(docs), first + 100))
                ]
            )
        return ids

    async def dispatch(self, mailing_id: str) -> tuple[float, dict[str, Any]]:
        bus = Bus(
            ServiceSettings(service_name="bench", namespace=self.namespace, rabbitmq_url=RABBITMQ),
            publishes=[DispatchRequested],
        )
        await bus.start()
        connection = await aio_pika.connect(RABBITMQ)
        channel = await connection.channel()
        exchange = await channel.declare_exchange(f"{self.namespace}.events", aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="dispatch.completed")
        event = DispatchRequested(
            tenant_id="acme",
            correlation_id=str(uuid.uuid4()),
            dispatch_id=str(uuid.uuid4()),
            mailing_id=mailing_id,
            subject="Invoice {document_number} - {client_name}",
            body="Dear {client_name},\nplease find your invoice {document_number} attached.\n",
        )
        started = time.perf_counter()
        await bus.publish(event)
        async with queue.iterator() as messages:
            async for message in messages:
                body = json.loads(message.body)
                await message.ack()
                if body["dispatch_id"] == event.dispatch_id:
                    elapsed = time.perf_counter() - started
                    break
        await connection.close()
        await bus.stop()
        return EMAILS / elapsed, body

    async def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self.merge_server is not None:
            self.merge_server.should_exit = True
            await self.merge_task
        connection = await aio_pika.connect(RABBITMQ)
        async with connection:
            channel = await connection.channel()
            for service in ("dispatch", "recipient-directory", "bench"):
                for key in ("dispatch.requested", "dispatch.resumed", "send.requested", "recipients.resolve"):
                    name = f"{self.namespace}.{service}.{key}"
                    for suffix in ("", ".retry", ".dlq"):
                        await channel.queue_delete(name + suffix)
            await channel.exchange_delete(f"{self.namespace}.events")


async def run(work: Path, sink_port: int) -> None:
    stack = Stack(work / "stack", sink_port)
    try:
        docs = documents()
        print(f"installing mailmerge into {work / 'mailmerge-venv'} (not the project's environment)", flush=True)
        binary = await asyncio.to_thread(install_mailmerge, work / "mailmerge-venv")
        await stack.start()
        mailings = [await stack.seed(docs) for _ in range(ROUNDS)]
        results: dict[str, list[float]] = {"ceiling": [], "mailmerge": [], "ours": []}
        round_trips: list[float] = []
        for round_ in range(ROUNDS):
            print(f"round {round_ + 1}: load average {load()}", flush=True)
            if "ceiling" in ONLY:
                results["ceiling"].append(await ceiling(sink_port, docs))
            if "mailmerge" in ONLY:
                results["mailmerge"].append(await asyncio.to_thread(mailmerge, binary, sink_port, docs, work))
            if "ours" in ONLY:
                watched = stack.pids()
                before = {name: cpu_seconds(pid) for name, pid in watched.items()}
                commands_before = await stack.db_commands()
                rate, completed = await stack.dispatch(mailings[round_])
                commands = await stack.db_commands() - commands_before
                assert (completed["sent"], completed["failed"]) == (EMAILS, 0), completed
                results["ours"].append(rate)
                # CPU time is steadier than the rate on a shared machine, and shows where the work goes.
                spent = {name: (cpu_seconds(pid) - before[name]) * 1000 / EMAILS for name, pid in watched.items()}
                print(
                    "  CPU ms per e-mail: "
                    + ", ".join(f"{name} {ms:.2f}" for name, ms in spent.items())
                    + f"; all {sum(spent.values()):.2f}",
                    flush=True,
                )
                # Every database command of the replicas during the round (the sweep's and upkeep's too).
                round_trips.append(commands.total() / EMAILS)
                print(
                    f"  database round trips per e-mail: {round_trips[-1]:.3f} ("
                    + ", ".join(f"{name} {n / EMAILS:.3f}" for name, n in commands.most_common())
                    + ")",
                    flush=True,
                )
            for name, rates in results.items():
                if rates:
                    print(f"  {name:<10} {rates[-1]:7.1f} e-mails/s", flush=True)
    finally:
        await stack.stop()
    best = {name: max(rates, default=float("nan")) for name, rates in results.items()}
    print(f"best of {ROUNDS}: " + ", ".join(f"{k} {v:.1f}/s" for k, v in best.items()) + f"; load now {load()}")
    spread = {name: f"{min(rates):.1f}-{max(rates):.1f}" for name, rates in results.items() if rates}
    print("spread: " + ", ".join(f"{k} {v}/s" for k, v in spread.items()))
    print(
        json.dumps(
            {
                "bench": "dispatch",
                "ceiling_per_s": round(best["ceiling"], 1),
                "mailmerge_per_s": round(best["mailmerge"], 1),
                "ours_per_s": round(best["ours"], 1),
                "ratio_vs_ceiling": round(best["ours"] / best["ceiling"], 3),
                "ratio_vs_mailmerge": round(best["ours"] / best["mailmerge"], 3),
                "db_round_trips_per_email": round(min(round_trips, default=float("nan")), 3),
            }
        )
    )


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    try:
        with smtp_sink() as sink_port:
            asyncio.run(run(work, sink_port))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
