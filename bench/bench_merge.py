"""merge: the same letter and 1,000 records through a plain docxtpl loop and through merge's renderer, in one run.

Target (DESIGN.md, performance targets): merge ≥ 20× a plain docxtpl loop on the
same template and records, with equivalent output. Ours starts with an empty
cache of compiled templates, so the one compilation is in its time. The two
loops take the records in alternating rounds of 100, so that other work on the
machine slows both alike.
"""

import asyncio
import io
import json
import os
import resource
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from publipost_merge.rendering import render_docx, render_docx_reference, render_within

RECORDS = 1_000
ROUND = 100
LETTER = Path(__file__).parents[1] / "samples" / "letter.docx"
CITIES = [("Paris", "75011"), ("Lyon", "69003"), ("Nantes", "44000"), ("Lille", "59000")]
BRANCHES = ["Paris Est", "Rhône & Alpes", "Atlantique", "Nord"]


def letter_records(count: int) -> list[dict[str, Any]]:
    """The fields of samples/letter.docx, varied enough to take both sides of its condition."""
    records = []
    for number in range(count):
        city, postal_code = CITIES[number % len(CITIES)]
        premium = 250 + (number * 37) % 600
        tax = round(premium * 0.09, 2)
        records.append(
            {
                "name": f"Client {number} & Fils" if number % 7 == 0 else f"Client {number}",
                "address": f"{number % 200 + 1} rue de la République",
                "postal_code": postal_code,
                "city": city,
                "branch": BRANCHES[number % len(BRANCHES)],
                "date": "25/11/2026",
                "document_number": f"PN-2026-{number:06d}",
                "customer_number": f"C{100000 + number}",
                "contract": f"CT-{number:06d}",
                "premium": premium,
                "tax": tax,
                "amount_due": round(premium + tax, 2),
                "signatory": "Claire Durand, Customer Service",
            }
        )
    return records


def seconds(render: Callable[[bytes, dict[str, Any]], bytes], template: bytes, records: list) -> float:
    started = time.perf_counter()
    for record in records:
        render(template, record)
    return time.perf_counter() - started


async def docs_per_second_within(template: bytes, records: list) -> float:
    """As merge's handler calls it: one record at a time on a worker thread, with a deadline."""
    started = time.perf_counter()
    for record in records:
        await render_within(30, template, record)
    return len(records) / (time.perf_counter() - started)


def zip_members(docx: bytes) -> dict[str, bytes]:
    package = zipfile.ZipFile(io.BytesIO(docx))
    return {name: package.read(name) for name in package.namelist()}


def main() -> None:
    template = LETTER.read_bytes()
    records = letter_records(RECORDS)
    load_before = os.getloadavg()[0]

    docxtpl_s = ours_s = 0.0
    for start in range(0, RECORDS, ROUND):
        docxtpl_s += seconds(render_docx_reference, template, records[start : start + ROUND])
        ours_s += seconds(render_docx, template, records[start : start + ROUND])
    docxtpl_rate, ours_rate = RECORDS / docxtpl_s, RECORDS / ours_s
    within_rate = asyncio.run(docs_per_second_within(template, records))

    # Equivalent output: every part of a sample of documents, byte for byte.
    for record in records[:: RECORDS // 10]:
        if zip_members(render_docx(template, record)) != zip_members(render_docx_reference(template, record)):
            raise SystemExit(f"output differs from docxtpl for {record['document_number']}")

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ratio = ours_rate / docxtpl_rate
    print(f"template: {LETTER.name}, {RECORDS} records, {os.cpu_count()} cores")
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"plain docxtpl loop (load, render, save): {docxtpl_rate:8.1f} docs/s")
    print(f"merge renderer (render_docx):           {ours_rate:8.1f} docs/s  ({ratio:.1f}x)")
    print(f"merge renderer (render_within, thread): {within_rate:8.1f} docs/s")
    print(f"output: identical parts to docxtpl on {len(records[:: RECORDS // 10])} sampled records")
    print(f"peak RSS: {peak_rss_mb:.0f} MB")
    print(
        json.dumps(
            {
                "bench": "merge",
                "docxtpl_docs_per_s": round(docxtpl_rate, 1),
                "ours_docs_per_s": round(ours_rate, 1),
                "ratio": round(ratio, 1),
                "peak_rss_mb": round(peak_rss_mb, 1),
                "benchmark": "merge",
                "value": round(ours_rate, 1),
                "unit": "docs/s",
                "reference": "plain docxtpl loop, same template and records",
            }
        )
    )


if __name__ == "__main__":
    main()
