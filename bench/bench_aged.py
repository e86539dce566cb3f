"""Aged store: the same 1,000-record mailing end to end on an empty store and on one holding months of history.

Target (DESIGN.md, "Lived-in"; issue 12): aged / empty ≤ 1.15, in the same run.

History is written through the services' own storage code (merge's, render-pdf's and dispatch's
repositories and the blob writer), as months of use leave it: 50 tenants, each with mailings of
250 documents spread over half a year, every document with its DOCX and PDF blobs (a real letter
rendered by merge and laid out by LibreOffice), its conversion charged, every mailing dispatched and
its not-sent part re-sent (two delivery records per document), and the consumers' inboxes. Seeding
takes minutes, so the seeded store is kept in .local/bench-aged/ and copied for each run (delete the
folder to seed again). The measured mailing is sent by one of the 50 tenants.

Then, in the same run, a fresh stack on an empty store and one on a copy of the aged store each send
a 40-record mailing to warm up (LibreOffice's first start), then the 1,000-record mailing (merge, PDF,
e-mail to smtp-sink, regrouping), ROUNDS times, alternating; the medians are compared.
After the aged rounds it prints what the embedded database costs: its resident memory, its size on
disk, and the slowest commands it served (its own profiler, from the aged run).
"""

import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from mailing_run import BenchStack, describe, run_mailing
from measure import load, smtp_sink
from publipost_contracts.reads import DocumentView, MailingView
from publipost_dispatch.delivery import dispatch_delivery
from publipost_dispatch.domain import Addressing, DeliveryState, DispatchStatus, EmailText, dispatch_key
from publipost_dispatch.model import Dispatch
from publipost_dispatch.repository import DeliveryRepository, DispatchRepository
from publipost_idempotency import ProcessedMessages
from publipost_localstack.processes import free_port, start_secantus
from publipost_localstack.stack import REPO
from publipost_merge.domain import Document, Mailing, MailingStatus, document_id_for, mailing_id_for
from publipost_merge.rendering import render_docx
from publipost_merge.repository import DOCUMENTS as MERGE_DOCUMENTS
from publipost_merge.repository import DocumentRepository, MailingRepository
from publipost_render_pdf.domain import pdf_blob_id
from publipost_render_pdf.repository import UsageRepository
from publipost_storage import NewBlob, Storage, derived_blob_id

TENANTS = 50
DOCUMENTS = int(os.environ.get("BENCH_AGED_DOCUMENTS", "100000"))  # fewer only to try the bench out
PER_MAILING = 250
MEASURED_TENANT = "tenant-07"
NAMESPACE = "aged"
SEED_VERSION = 1  # change when what is seeded changes: the kept store is seeded again
STORE = REPO / ".local" / "bench-aged"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
WARM_UP = 40  # records of the mailing each stack sends before the one measured
TARGET = 1.15
DAYS = 180


def letter(n: int) -> dict[str, Any]:
    return {
        "id": f"r{n}",
        "customer_number": f"C{n:06d}",
        "document_number": f"INV-{n:07d}",
        "name": f"Client {n} SARL",
        "email": f"client{n}@example.test",
        "address": f"{n} rue de la Paix",
        "postal_code": "75002",
        "city": "Paris",
        "contract": f"CT-{n}",
        "premium": 100,
        "tax": 20,
        "amount_due": 120,
        "branch": "Lyon",
        "signatory": "Claire Martin",
    }


def sample_blobs(work: Path) -> tuple[bytes, bytes]:
    """A letter as merge renders it, and its PDF as LibreOffice lays it out."""
    docx = render_docx((REPO / "samples" / "letter.docx").read_bytes(), {"date": "02/12/2026", **letter(1)})
    (work / "letter.docx").write_bytes(docx)
    profile = f"file://{work / 'profile'}"
    subprocess.run(
        [
            "soffice",
            f"-env:UserInstallation={profile}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(work),
            str(work / "letter.docx"),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return docx, (work / "letter.pdf").read_bytes()


class Seeder:
    """Months of history, written with the services' repositories into the `aged` namespace."""

    def __init__(self, url: str, docx: bytes, pdf: bytes) -> None:
        self.merge = Storage(url, f"{NAMESPACE}_merge", f"{NAMESPACE}_blobs")
        self.render = Storage(url, f"{NAMESPACE}_render_pdf", f"{NAMESPACE}_blobs")
        self.dispatch = Storage(url, f"{NAMESPACE}_dispatch", f"{NAMESPACE}_blobs")
        self.mailings = MailingRepository(self.merge.db)
        self.documents = DocumentRepository(self.merge.db)
        self.usage = UsageRepository(self.render.db)
        self.dispatches = DispatchRepository(self.dispatch.db)
        self.deliveries = DeliveryRepository(self.dispatch.db)
        self.inboxes = {
            "merge": ProcessedMessages(self.merge.db),
            "render-pdf": ProcessedMessages(self.render.db),
            "dispatch": ProcessedMessages(self.dispatch.db),
        }
        self.docx, self.pdf = docx, pdf
        self.random = random.Random(12)

    async def seed(self) -> None:
        for repository in (
            self.mailings,
            self.documents,
            self.usage,
            self.dispatches,
            self.deliveries,
            *self.inboxes.values(),
        ):
            await repository.ensure_indexes()
        await self.merge.blobs.ensure_indexes()
        mailings = DOCUMENTS // PER_MAILING
        started = time.perf_counter()
        for n in range(mailings):
            await self.mailing(f"tenant-{n % TENANTS:02d}", n)
            if (n + 1) % 40 == 0:
                done = (n + 1) * PER_MAILING
                print(f"  seeded {done:,} documents ({done / (time.perf_counter() - started):.0f}/s)", flush=True)

    async def mailing(self, tenant: str, n: int) -> None:
        created = datetime.now(UTC) - timedelta(days=DAYS * (1 - n / (DOCUMENTS // PER_MAILING)), minutes=n)
        request_id = f"history-{n}"
        mailing_id = mailing_id_for(tenant, request_id)
        name = f"Invoices {created.date().isoformat()}"
        mailing = Mailing(
            id=mailing_id,
            tenant_id=tenant,
            request_id=request_id,
            correlation_id=request_id,
            name=name,
            base_name=name,
            template_id="letter",
            template_version=1,
            output="pdf",
            side_effects_published=True,
            status=MailingStatus.READY,
            expected=PER_MAILING,
            documents=PER_MAILING,
            rendered=PER_MAILING,
            created_at=created,
        )
        documents: list[Document] = []
        blobs = []
        for index in range(PER_MAILING):
            record = letter(n * PER_MAILING + index)
            document_id = document_id_for(mailing_id, index)
            docx_id, pdf_id = derived_blob_id("docx", document_id), pdf_blob_id(document_id)
            tags = {"tenant_id": tenant, "mailing_id": mailing_id, "document_id": document_id}
            blobs.append(
                NewBlob(
                    docx_id,
                    self.docx,
                    f"{record['document_number']}.docx",
                    {"content_type": "application/vnd.openxmlformats-officedocument.wordprocessingml.document", **tags},
                )
            )
            blobs.append(
                NewBlob(
                    pdf_id,
                    self.pdf,
                    f"{record['document_number']}.pdf",
                    {"content_type": "application/pdf", "pages": 1, **tags},
                )
            )
            document = Document.rendered(mailing, index, record)
            document.converted(pdf_id, 1)
            documents.append(document)
        for first in range(0, len(blobs), 100):
            await self.merge.blobs.put_many(blobs[first : first + 100])
        await self.mailings.create(mailing)
        await self.documents.add_many(documents)
        await self.usage.charge(tenant, created.year, [d.id for d in documents], None)
        sent = {"id": mailing_id, "name": name}
        views = [{**MERGE_DOCUMENTS.dump(d), "id": d.id} for d in documents]
        await self.dispatched(tenant, sent, views, created, "first")
        await self.dispatched(tenant, sent, views, created + timedelta(days=2), "re-send")
        for service, inbox in self.inboxes.items():
            for event in range(PER_MAILING // 20 + 2):
                await inbox.mark(f"{NAMESPACE}.{service}.history", f"{request_id}/{event}")

    async def dispatched(
        self, tenant: str, mailing: dict[str, Any], documents: list[dict[str, Any]], at: datetime, which: str
    ) -> None:
        dispatch_id = f"{mailing['id']}/{which}"
        key = dispatch_key(tenant, dispatch_id)
        dispatch = Dispatch(
            id=key,
            tenant_id=tenant,
            dispatch_id=dispatch_id,
            mailing_id=mailing["id"],
            correlation_id=dispatch_id,
            document_type="invoice",
            status=DispatchStatus.COMPLETED,
            total=len(documents),
            created_at=at,
            mailing_name=mailing["name"],
            pause_after_errors=50,
            text=EmailText(subject="Invoice {document_number} - {client_name}", body="Dear {client_name},"),
        )
        await self.dispatches.create(dispatch)
        mailing_view = MailingView.model_construct(id=mailing["id"], name=mailing["name"])
        deliveries = []
        for document in documents:
            delivery = dispatch_delivery(dispatch, mailing_view, DocumentView.model_validate(document))
            failed = self.random.random() < 0.03
            delivery.state, delivery.attempts, delivery.created_at = DeliveryState.SENDING, 1, at
            delivery.record(
                DeliveryState.FAILED if failed else DeliveryState.SENT,
                reason="550 mailbox unavailable" if failed else None,
                addressing=Addressing(to=[document["email"]]),
                smtp_reply=None if failed else "250 2.0.0 Ok: queued",
            )
            delivery.finished_at = at + timedelta(seconds=30)
            deliveries.append(delivery)
        for first in range(0, len(deliveries), 500):
            await self.deliveries.add_many(deliveries[first : first + 500])

    async def close(self) -> None:
        for storage in (self.merge, self.render, self.dispatch):
            await storage.close()


async def seed(url: str, docx: bytes, pdf: bytes) -> None:
    seeder = Seeder(url, docx, pdf)
    try:
        await seeder.seed()
    finally:
        await seeder.close()


def seeded_store(work: Path) -> Path:
    """The kept aged store, seeded now if there is none of this version."""
    store, marker = STORE / "secantus", STORE / "seeded.json"
    if marker.exists() and json.loads(marker.read_text()) | {"seconds": 0, "on": ""} == seed_spec():
        return store
    shutil.rmtree(STORE, ignore_errors=True)
    STORE.mkdir(parents=True)
    print(
        f"seeding an aged store in {STORE}: {DOCUMENTS:,} documents of {TENANTS} tenants, "
        f"{2 * DOCUMENTS:,} delivery records (once; kept for the next runs)",
        flush=True,
    )
    docx, pdf = sample_blobs(work)
    port = free_port()
    database = start_secantus(port, store, STORE, name="seeding")
    started = time.perf_counter()
    try:
        asyncio.run(seed(f"mongodb://127.0.0.1:{port}/", docx, pdf))
    finally:
        database.stop()
    seconds = time.perf_counter() - started
    marker.write_text(json.dumps(seed_spec() | {"seconds": round(seconds), "on": date.today().isoformat()}))
    print(f"seeded in {seconds:.0f}s; {disk_mb(store):,.0f} MB on disk", flush=True)
    return store


def seed_spec() -> dict[str, Any]:
    return {
        "version": SEED_VERSION,
        "documents": DOCUMENTS,
        "tenants": TENANTS,
        "deliveries": 2 * DOCUMENTS,
        "seconds": 0,
        "on": "",
    }


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


async def profile_slowest(bench: BenchStack, limit: int = 5) -> list[str]:
    """The slowest commands the database served while profiling (level 1: those over 20 ms)."""
    storage = bench.storage()
    try:
        found = []
        for name in await storage.client.list_database_names():
            if name.startswith(f"{bench.config.namespace}_"):
                cursor = storage.client[name]["system.profile"].find({}).sort("millis", -1).limit(limit)
                found += [
                    (
                        doc.get("millis", 0),
                        name,
                        doc.get("ns", ""),
                        doc.get("op", ""),
                        json.dumps(doc.get("command", {}), default=str)[:160],
                    )
                    async for doc in cursor
                ]
        return [f"{ms} ms {op} {ns}: {command}" for ms, _, ns, op, command in sorted(found, reverse=True)[:limit]]
    finally:
        await storage.close()


async def set_profiling(bench: BenchStack) -> None:
    storage = bench.storage()
    try:
        for name in await storage.client.list_database_names():
            if name.startswith(f"{bench.config.namespace}_"):
                await storage.client[name].command("profile", 1, slowms=20)
    finally:
        await storage.close()


def one_round(work: Path, sink_port: int, label: str, store: Path | None, round_: int) -> tuple[float, dict[str, Any]]:
    run_dir = work / f"{label}-{round_}"
    extra: dict[str, Any] = {}
    if store is not None:
        started = time.perf_counter()
        shutil.copytree(store, run_dir / "secantus")
        print(
            f"copied the aged store ({disk_mb(run_dir / 'secantus'):,.0f} MB) in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
    bench = BenchStack(run_dir, sink_port, namespace=NAMESPACE if store is not None else None)
    bench.up()
    try:
        if store is not None:
            asyncio.run(set_profiling(bench))
        # LibreOffice's first start (its profile, the fonts) and the services' first connections are
        # the same cost on either store: a small mailing pays them before the one measured.
        asyncio.run(run_mailing(bench, WARM_UP, MEASURED_TENANT, f"warm-{label}{round_}-{uuid.uuid4().hex[:4]}"))
        print(f"{label} store, round {round_ + 1}: load average {load()}", flush=True)
        outcome, usage = asyncio.run(
            run_mailing(bench, 1_000, MEASURED_TENANT, f"{label}{round_}-{uuid.uuid4().hex[:4]}")
        )
        describe(f"  {label}", outcome, usage)
        if store is not None:
            extra["database_rss_mb"] = round(usage.rss_mb["secantusdb"])
            extra["slowest"] = asyncio.run(profile_slowest(bench))
    finally:
        bench.down()
    if store is not None:
        extra["disk_mb"] = round(disk_mb(run_dir / "secantus"))
    shutil.rmtree(run_dir, ignore_errors=True)
    return outcome.total_s, extra


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-aged-"))
    try:
        store = seeded_store(work)
        with smtp_sink() as sink_port:
            empty, aged, extra = [], [], {}
            for round_ in range(ROUNDS):
                empty.append(one_round(work, sink_port, "empty", None, round_)[0])
                seconds, extra = one_round(work, sink_port, "aged", store, round_)
                aged.append(seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    empty_s, aged_s = statistics.median(empty), statistics.median(aged)
    print(f"empty store: {', '.join(f'{s:.1f}' for s in empty)} s; aged store: {', '.join(f'{s:.1f}' for s in aged)} s")
    print(
        f"the database after the aged run: {extra.get('database_rss_mb')} MB resident, {extra.get('disk_mb'):,} MB on disk"
    )
    print("slowest commands on the aged store (profiler, over 20 ms):")
    for line in extra.get("slowest", []):
        print(f"  {line}")
    print(
        json.dumps(
            {
                "bench": "aged",
                "empty_s": round(empty_s, 2),
                "aged_s": round(aged_s, 2),
                "ratio": round(aged_s / empty_s, 3),
                "target": TARGET,
            }
        )
    )


if __name__ == "__main__":
    main()
