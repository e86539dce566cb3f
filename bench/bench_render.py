"""render-pdf against carbone: the same 200 letters to PDF three ways, in one run.

Target (issue 4): render-pdf's batch path at >= 50 per-recipient PDFs/s with one
LibreOffice worker, and >= 15x carbone's docx->pdf measured here.

  (a) carbone: its convert API (npm package carbone, installed in bench/carbone
      from package-lock.json if node_modules is missing), each DOCX one after
      the other on its warm LibreOffice;
  (b) one conversion per document on a warm render-pdf LibreOffice worker;
  (c) render-pdf's batch path: DOCX blobs in GridFS to per-recipient PDFs
      stored in GridFS, chunks of --chunk documents (merge's default, 20) through
      the service's handler code, as many chunks in flight as the service's
      prefetch, against a real SecantusDB in a temporary folder.

    python bench/bench_render.py [--documents 200] [--chunk 20]

Prints figures and peak RSS (this process, and the largest child process
reaped: LibreOffice, node), then as its last line one JSON object.
"""

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from measure import secantus
from publipost_contracts import RenderItem, RenderRequested
from publipost_localstack.records import letter_record
from publipost_merge.rendering import render_docx
from publipost_render_pdf import handlers
from publipost_render_pdf.app import build
from publipost_render_pdf.libreoffice import LibreOfficePool, WorkerConfig
from publipost_render_pdf.settings import RenderPdfSettings

ROOT = Path(__file__).resolve().parents[1]
CARBONE = ROOT / "bench" / "carbone"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# carbone looks for soffice.bin on PATH, and for a python3 that imports uno (Debian's, not a venv's).
LIBREOFFICE_PROGRAM = "/usr/lib/libreoffice/program"


def record(n: int) -> dict[str, object]:
    return {
        **letter_record(n, record_id=f"r{n}", document_number=f"INV-{n:05d}", email=None),
        "signatory": "The customer service",
        "date": "25/11/2026",
    }


def letters(count: int) -> list[bytes]:
    template = (ROOT / "samples" / "letter.docx").read_bytes()
    return [render_docx(template, record(n)) for n in range(count)]


def carbone(documents: list[bytes], folder: Path) -> float:
    if not (CARBONE / "node_modules" / "carbone").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=CARBONE, check=True)
    for n, docx in enumerate(documents):
        (folder / f"letter-{n:04d}.docx").write_bytes(docx)
    env = {**os.environ, "PATH": f"{LIBREOFFICE_PROGRAM}:/usr/bin:/bin"}
    done = subprocess.run(
        ["node", str(CARBONE / "convert.js"), str(folder)], env=env, check=True, capture_output=True, text=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    pdfs = list(folder.glob("letter-*.pdf"))
    if len(pdfs) != len(documents):
        raise RuntimeError(f"carbone wrote {len(pdfs)} PDFs for {len(documents)} documents")
    return result["seconds"]


async def one_by_one(documents: list[bytes], settings: RenderPdfSettings) -> float:
    pool = LibreOfficePool(
        1,
        WorkerConfig.from_settings(settings),
    )
    await pool.start()
    try:
        await pool.convert(documents[0])  # warm: LibreOffice's first document loads its filters
        started = time.perf_counter()
        for docx in documents:
            await pool.convert(docx)
        return time.perf_counter() - started
    finally:
        await pool.stop()


async def batch_path(documents: list[bytes], chunk: int, mongodb_url: str) -> float:
    namespace = "bench" + uuid.uuid4().hex[:8]
    settings = RenderPdfSettings(namespace=namespace, mongodb_url=mongodb_url, workers=1)
    service = build(settings)
    ctx = service.components
    await service.migrate()
    await ctx.converter.start()
    try:
        blobs = ctx.storage.blobs
        await ctx.converter.convert(documents[0])  # warm, as a service that has been up for a while
        items = [
            RenderItem(document_id=f"d{n:05d}", docx_blob_id=await blobs.put(docx, f"letter-{n}.docx", DOCX))
            for n, docx in enumerate(documents)
        ]
        events = [
            RenderRequested(
                tenant_id="bench", correlation_id=namespace, mailing_id="m1", chunk=n, documents=items[i : i + chunk]
            )
            for n, i in enumerate(range(0, len(items), chunk))
        ]
        in_flight = asyncio.Semaphore(settings.prefetch)  # what the broker would hand this replica at once

        async def consume(event: RenderRequested):
            async with in_flight:
                return await handlers.render_chunk(event, ctx)

        started = time.perf_counter()
        answers = await asyncio.gather(*(consume(event) for event in events))
        seconds = time.perf_counter() - started
        results = [result for answer in answers for result in answer.results]
        failed = [r for r in results if r.error or not r.pdf_blob_id]
        if failed or len(results) != len(documents):
            raise RuntimeError(f"{len(failed)} of {len(results)} documents failed: {failed[:3]}")
        stored = await ctx.storage.client[settings.blob_database_name]["fs.files"].count_documents(
            {"metadata.content_type": "application/pdf"}
        )
        if stored != len(documents):
            raise RuntimeError(f"{stored} PDFs stored for {len(documents)} documents")
        return seconds
    finally:
        await ctx.converter.stop()
        await ctx.storage.close()


def peak_rss_mb() -> tuple[float, float]:
    """Peak RSS of this process and of the largest child reaped, in MB (Linux reports kilobytes)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=20, help="documents per render.requested (merge's default)")
    args = parser.parse_args()

    documents = letters(args.documents)
    settings = RenderPdfSettings()
    load = os.getloadavg()
    print(f"{len(documents)} letters rendered from samples/letter.docx; load average {load[0]:.2f} {load[1]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-render-") as temp:
        folder = Path(temp)
        (folder / "carbone").mkdir()
        carbone_s = carbone(documents, folder / "carbone")
        print(f"(a) carbone docx->pdf, one by one:        {carbone_s:6.2f} s  {len(documents) / carbone_s:7.1f} PDFs/s")
        single_s = asyncio.run(one_by_one(documents, settings))
        print(f"(b) warm LibreOffice worker, one by one:  {single_s:6.2f} s  {len(documents) / single_s:7.1f} PDFs/s")
        with secantus(folder) as mongodb_url:
            batch_s = asyncio.run(batch_path(documents, args.chunk, mongodb_url))
        print(
            f"(c) render-pdf batch path, chunks of {args.chunk}: {batch_s:6.2f} s  {len(documents) / batch_s:7.1f} PDFs/s"
            " (GridFS DOCX to per-recipient PDFs stored)"
        )
    own, children = peak_rss_mb()
    print(
        f"peak RSS: this process {own:.0f} MB, largest child {children:.0f} MB; load average {os.getloadavg()[0]:.2f}"
    )
    carbone_rate, single_rate, ours = (len(documents) / s for s in (carbone_s, single_s, batch_s))
    print(
        json.dumps(
            {
                "bench": "render",
                "documents": len(documents),
                "chunk": args.chunk,
                "carbone_pdfs_per_s": round(carbone_rate, 1),
                "one_by_one_pdfs_per_s": round(single_rate, 1),
                "ours_pdfs_per_s": round(ours, 1),
                "ratio_vs_carbone": round(ours / carbone_rate, 1),
                "peak_rss_mb": round(own + children, 1),
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
