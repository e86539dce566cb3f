"""Each hand-written replacement of a library against the library, on the same inputs (docs/library-parity.md).

- MIME (dispatch, PUBLIPOST_MIME_WRITER): 1,000 e-mails, each its own 25 KB PDF, written by mail.py
  (attachment encoded once per document, message assembled from bytes) and by EmailMessage.
- DOCX rendering (merge, PUBLIPOST_RENDERER): 200 records of samples/letter.docx, rendered from the
  template compiled once (compiling included) and by plain docxtpl.
- DOCX combining (render-pdf, PUBLIPOST_DOCX_COMBINER): a run of 100 letters (PUBLIPOST_BATCH_SIZE)
  made one DOCX by combine.py and by docxcompose, then laid out by one warm LibreOffice, since what the
  combined document holds changes LibreOffice's time too.
- PDF splitting (render-pdf, PUBLIPOST_PDF_SPLITTER): that run's PDF cut into its 100 letters object by
  object and by pypdf.

Each is timed BENCH_ROUNDS times (3), alternating, and the best kept: the machine is shared. Peak memory is
Python's (tracemalloc) during one more call of each, untimed. Prints its figures, then one JSON line:
`ratio` is the smallest of `ratios`, each the library's time over the hand-written one's.
"""

import asyncio
import io
import json
import os
import sys
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from publipost_dispatch.mail import MESSAGE_BUILDERS, pdf_attachment
from publipost_localstack.records import letter_record
from publipost_merge.rendering import render_docx
from publipost_render_pdf.combine import COMBINERS
from publipost_render_pdf.libreoffice import LibreOfficePool, WorkerConfig
from publipost_render_pdf.pdf_split import SPLITTERS
from publipost_render_pdf.settings import RenderPdfSettings

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
EMAILS = 1_000
PDF_BYTES = 25_000
RECORDS = 200
RUN = 100


def record(n: int) -> dict[str, object]:
    return {
        **letter_record(n, record_id=f"r{n}", document_number=f"INV-{n:05d}", email=None),
    }


def peak_mb(work: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def compare(name: str, pair: dict[str, Callable[[], object]], per: int, unit: str) -> dict[str, Any]:
    """Both of a pair timed in alternating rounds; the hand-written one is the first."""
    times: dict[str, list[float]] = {label: [] for label in pair}
    for _ in range(ROUNDS):
        for label, work in pair.items():
            started = time.perf_counter()
            work()
            times[label].append(time.perf_counter() - started)
    seconds = {label: min(values) for label, values in times.items()}
    memory = {label: peak_mb(work) for label, work in pair.items()}
    (own, own_s), (library, library_s) = seconds.items()
    print(f"{name}:")
    for label, value in seconds.items():
        print(
            f"  {label:12s} {value * 1000:9.1f} ms  {value / per * 1000:8.3f} ms/{unit}  peak {memory[label]:6.1f} MB"
        )
    print(f"  {library} / {own}: {library_s / own_s:.1f}x the time, {memory[library] / memory[own]:.1f}x the memory")
    return {"ratio": round(library_s / own_s, 1), "memory_ratio": round(memory[library] / memory[own], 1)}


def mime() -> dict[str, Any]:
    pdfs = [os.urandom(PDF_BYTES) for _ in range(EMAILS)]

    def send_all(writer: str) -> Callable[[], None]:
        build = MESSAGE_BUILDERS[writer]

        def run() -> None:
            for n, pdf in enumerate(pdfs):  # one e-mail per document, as a dispatch without copies sends
                build(
                    sender="Publipost <no-reply@publipost.test>",
                    to=[f"client{n}@example.test"],
                    cc=[],
                    reply_to=None,
                    subject=f"Invoice INV-{n:06d} - Client {n}",
                    body=f"Dear Client {n},\nplease find your invoice INV-{n:06d} attached.\n",
                    html_body=None,
                    attachment=pdf_attachment(pdf, f"INV-{n:06d}.pdf"),
                    message_id=f"<{n}.0@publipost.test>",
                )

        return run

    print(f"MIME: {EMAILS} e-mails, a {PDF_BYTES // 1000} KB PDF each")
    return compare("mime", {"direct": send_all("direct"), "email": send_all("email")}, EMAILS, "e-mail")


def variants(template: bytes, count: int) -> list[bytes]:
    """The template under `count` zip comments: other bytes, so the compiled path compiles each anew."""
    out = []
    for n in range(count):
        copy = io.BytesIO(template)
        with zipfile.ZipFile(copy, "a") as archive:
            archive.comment = f"variant {n}".encode()
        out.append(copy.getvalue())
    return out


def rendering(template: bytes) -> dict[str, Any]:
    def render_all(compiled: bool) -> Callable[[], None]:
        templates = iter(variants(template, ROUNDS + 1))  # the rounds, and the memory pass

        def run() -> None:
            this = next(templates)  # a mailing: compiled once, its records rendered
            for n in range(RECORDS):
                render_docx(this, record(n), compiled=compiled)

        return run

    print(f"DOCX rendering: {RECORDS} records of samples/letter.docx ({len(template) // 1000} KB)")
    return compare("rendering", {"compiled": render_all(True), "docxtpl": render_all(False)}, RECORDS, "record")


async def combining_and_splitting(documents: list[bytes]) -> dict[str, dict[str, Any]]:
    print(f"DOCX combining: a run of {len(documents)} letters")
    combined = {name: combine(documents) for name, combine in COMBINERS.items()}
    results = {
        "combine": compare(
            "combine",
            {name: (lambda combine=combine: combine(documents)) for name, combine in COMBINERS.items()},
            len(documents),
            "letter",
        )
    }
    pool = LibreOfficePool(1, WorkerConfig.from_settings(RenderPdfSettings()))
    await pool.start()
    try:
        pdfs = {name: await pool.convert(docx) for name, docx in combined.items()}  # warm
        layout: dict[str, list[float]] = {name: [] for name in combined}
        for _ in range(ROUNDS):
            for name, docx in combined.items():
                started = time.perf_counter()
                await pool.convert(docx)
                layout[name].append(time.perf_counter() - started)
    finally:
        await pool.stop()
    own, library = (min(values) for values in layout.values())
    sizes = ", ".join(f"{name} {len(docx) // 1000} KB" for name, docx in combined.items())
    print(f"  LibreOffice lays the combined DOCX out ({sizes}):")
    for name, values in layout.items():
        print(f"  {name:12s} {min(values) * 1000:9.1f} ms  {min(values) / len(documents) * 1000:8.3f} ms/letter")
    print(f"  docxcompose / publipost: {library / own:.2f}x LibreOffice's time")
    results["layout"] = {"ratio": round(library / own, 2)}

    pdf = pdfs["publipost"]
    print(f"PDF splitting: LibreOffice's PDF of the run ({len(pdf) // 1000} KB) into {len(documents)} letters")
    results["split"] = compare(
        "split",
        {name: (lambda split=split: split(pdf, len(documents))) for name, split in SPLITTERS.items()},
        len(documents),
        "letter",
    )
    return results


def main() -> None:
    template = (ROOT / "samples" / "letter.docx").read_bytes()
    load = os.getloadavg()
    print(f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f}; best of {ROUNDS} rounds\n")
    results = {"mime": mime(), "rendering": rendering(template)}
    documents = [render_docx(template, record(n)) for n in range(RUN)]
    results |= asyncio.run(combining_and_splitting(documents))
    ratios = {name: result["ratio"] for name, result in results.items()}
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    print(
        json.dumps(
            {
                "benchmark": "library-parity",
                "value": min(ratios.values()),
                "unit": "x (library time / hand-written time)",
                "reference": "the library path of each pair, on the same inputs",
                "ratio": min(ratios.values()),
                "ratios": ratios,
                "memory_ratios": {name: r["memory_ratio"] for name, r in results.items() if "memory_ratio" in r},
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
