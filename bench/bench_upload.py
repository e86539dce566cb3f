"""A mailing's records uploaded to POST /mailings: checked one at a time and streamed to GridFS.

Target (issue 17, point 1): an uploaded records file is never held whole in memory. The request's body
is spooled to a temporary file by the web server before merge reads it (Starlette's upload, 1 MB in
memory at most); from there merge reads the file a batch at a time, checks each record, and writes it
to GridFS as NDJSON. This script runs that path (`starting.start_mailing` with the real repositories
and GridFS on SecantusDB; the template service and the broker stood in for: the template is known, the
merge.requested is kept) for a small file, then for one 20 times larger, of each kind, and compares
merge's peak resident memory: flat means the large file's peak is within 1.2× of the small one's.

The store is aged first: earlier mailings' records files (--aged, 20 by default) are already in GridFS.

    python bench/bench_upload.py [--rows 100000] [--aged 20]

Prints figures, then as its last line one JSON object: the largest peak-memory ratio (large / small)
against the 1.2 reference.
"""

import argparse
import asyncio
import csv
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import openpyxl
from measure import reset_peak_rss, secantus, status_kb
from publipost_merge.clients import TemplateRef
from publipost_merge.context import MergeContext
from publipost_merge.repository import MailingRepository, MailingRequestRepository
from publipost_merge.settings import MergeSettings
from publipost_merge.starting import MailingStart, UploadedRecords, start_mailing
from publipost_storage import Storage

MEMORY_RATIO = 1.2
SMALL_SHARE = 20  # the small file has rows / SMALL_SHARE records
FIELDS = ["id", "name", "customer_number", "document_number", "email", "address", "postal_code", "city", "amount_due"]
TEMPLATE = TemplateRef(
    template_id="bench-letter",
    name="Bench letter",
    version=1,
    blob_id="unused",
    fields=FIELDS,
    custom_fields=[],
    template_type="standard",
    auto_pdf=True,
    validation_required=False,
)


class KnownTemplate:
    """The template service's answer, without the service."""

    async def get(self, tenant_id: str, template_id: str, version: int | None = None) -> TemplateRef:
        return TEMPLATE


class KeptEvents:
    """The broker, for the one event a start publishes: kept, so merge does not begin rendering."""

    def __init__(self) -> None:
        self.published: list[object] = []

    async def publish(self, event: object) -> None:
        self.published.append(event)


def row(n: int) -> list[object]:
    return [
        f"r{n}",
        f"Client Number{n}",
        f"C{n:06d}",
        f"INV-{n:06d}",
        f"client{n}@example.test",
        f"{n} rue de la Paix",
        "75002",
        "Paris",
        round(100 + n % 900 + 0.5, 2),
    ]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(FIELDS)
        writer.writerows(row(n) for n in range(1, rows + 1))


def write_ndjson(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for n in range(1, rows + 1):
            out.write(json.dumps(dict(zip(FIELDS, row(n), strict=True))) + "\n")


def write_xlsx(path: Path, rows: int) -> None:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(FIELDS)
    for n in range(1, rows + 1):
        sheet.append(row(n))
    workbook.save(path)


WRITERS = {"csv": write_csv, "ndjson": write_ndjson, "xlsx": write_xlsx}


async def upload(ctx: MergeContext, path: Path, kind: str) -> dict:
    start = MailingStart(
        request_id=str(uuid.uuid4()),
        template_id=TEMPLATE.template_id,
        template_version=None,
        name=path.stem,
        custom_fields={},
        output="pdf",
        missing_fields="refuse",
        entity_type="client",
    )
    reset_peak_rss(os.getpid())  # each upload's peak is its own
    began = time.perf_counter()
    await start_mailing(ctx, "bench", str(uuid.uuid4()), start, UploadedRecords(path, kind))
    seconds = time.perf_counter() - began
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(status_kb(os.getpid(), "VmHWM") / 1024, 1)}


async def run(args: argparse.Namespace, folder: Path, mongodb_url: str) -> dict:
    settings = MergeSettings(mongodb_url=mongodb_url, namespace=f"bench{uuid.uuid4().hex[:8]}")
    storage = Storage.for_service(settings)
    events = KeptEvents()
    ctx = MergeContext(
        settings=settings,
        storage=storage,
        bus=events,  # type: ignore[arg-type]
        mailings=MailingRepository(storage.db),
        documents=None,  # type: ignore[arg-type]  # a start reads no document
        tenant_settings=None,  # type: ignore[arg-type]
        requests=MailingRequestRepository(storage.db),
        templates=KnownTemplate(),  # type: ignore[arg-type]
        directory=None,  # type: ignore[arg-type]  # records come from a file, not a segment
        renderer=None,  # type: ignore[arg-type]
    )
    await ctx.mailings.ensure_indexes()
    await ctx.requests.ensure_indexes()
    try:
        small_rows = max(1, args.rows // SMALL_SHARE)
        aged = folder / "aged.csv"
        write_csv(aged, small_rows)
        for _ in range(args.aged):
            await upload(ctx, aged, "csv")
        print(f"aged store: {args.aged} records files of {small_rows:,} records already in GridFS")
        ratios: dict[str, float] = {}
        for kind, write in WRITERS.items():
            small, large = folder / f"small.{kind}", folder / f"large.{kind}"
            write(small, small_rows)
            write(large, args.rows)
            first = await upload(ctx, small, kind)
            second = await upload(ctx, large, kind)
            ratios[kind] = round(second["peak_rss_mb"] / first["peak_rss_mb"], 3)
            print(
                f"{kind:6} {small_rows:>7,} records ({small.stat().st_size / 1e6:5.1f} MB): {first['seconds']:5.1f} s,"
                f" peak RSS {first['peak_rss_mb']} MB | {args.rows:,} records ({large.stat().st_size / 1e6:5.1f} MB):"
                f" {second['seconds']:5.1f} s, {args.rows / second['seconds']:,.0f} records/s,"
                f" peak RSS {second['peak_rss_mb']} MB (× {ratios[kind]})"
            )
        stored = [e.records_file_id for e in events.published]  # type: ignore[attr-defined]
        assert len(stored) == args.aged + 2 * len(WRITERS) and all(stored), "every start stored its records file"
        return {"ratios": ratios}
    finally:
        await storage.client.drop_database(settings.database_name)
        await storage.client.drop_database(settings.blob_database_name)
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--aged", type=int, default=20, help="records files stored before the measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        folder = Path(tmp)
        with secantus(folder) as mongodb_url:
            measured = asyncio.run(run(args, folder, mongodb_url))
    worst = max(measured["ratios"].values())
    print(
        json.dumps(
            {
                "bench": "upload",
                "benchmark": "upload",
                "rows": args.rows,
                "peak_rss_ratios": measured["ratios"],
                "value": worst,
                "unit": "peak RSS, large / small",
                "reference": MEMORY_RATIO,
                "ratio": round(worst / MEMORY_RATIO, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
