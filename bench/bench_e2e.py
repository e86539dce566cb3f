"""End to end: 1,000 recipients from merge.requested to merge.mailing_regrouped on the embedded default.

Target (DESIGN.md, performance targets): ≤ 60 s on this 2-core machine with everything on it (six
services, SecantusDB, RabbitMQ, LibreOffice), on an empty store; and memory flat in the number of
records: a 10,000-record mailing's peak resident memory, per service and for the database, within
1.2× of the 1,000-record one's.

The local stack (`make up`'s processes) runs in a folder of its own and sends to Postfix's smtp-sink.
An internal system is played here: it registers the sample letter, publishes merge.requested, and
dispatch.requested once merge.completed says the mailing is ready. Stages:
- docx: until merge asks for the last PDFs (every DOCX rendered and stored; each chunk goes to render-pdf
  as soon as it is stored, so conversion runs beside rendering);
- pdf: until merge.completed (the last PDFs converted, the print file built);
- dispatch: until dispatch.completed (every e-mail sent or failed);
- regroup: until merge.mailing_regrouped (the sent / not sent mailings with their print files).

BENCH_E2E_LARGE=0 skips the 10,000-record mailing (the memory comparison).
"""

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path

from mailing_run import BenchStack, describe, run_mailing
from measure import load, smtp_sink

SMALL = 1_000
LARGE = 10_000
TARGET_S = 60.0
MEMORY_RATIO = 1.2


async def run(work: Path, sink_port: int) -> dict[str, object]:
    bench = BenchStack(work / "stack", sink_port)
    await asyncio.to_thread(bench.up)
    try:
        print(f"load average before: {load()}", flush=True)
        small, small_usage = await run_mailing(bench, SMALL, "acme", "small")
        describe(f"{SMALL:,} recipients", small, small_usage)
        result: dict[str, object] = {
            "bench": "e2e",
            "total_s": small.total_s,
            **{f"{k}_s": v for k, v in small.stages.items()},
        }
        result["cpu_s"] = round(sum(small_usage.cpu_s.values()), 1)
        if os.environ.get("BENCH_E2E_LARGE", "1") != "0":
            large, large_usage = await run_mailing(bench, LARGE, "acme", "large")
            describe(f"{LARGE:,} recipients", large, large_usage)
            small_peak, large_peak = small_usage.peak_rss_mb, large_usage.peak_rss_mb
            ratios = {name: round(large_peak[name] / small_peak[name], 2) for name in small_peak if small_peak[name]}
            print("peak RSS 10,000 / 1,000: " + ", ".join(f"{name} {r:.2f}" for name, r in ratios.items()))
            result["large_total_s"] = large.total_s
            result["memory_ratio_max"] = max(ratios.values())
            result["memory_ratio_worst"] = max(ratios, key=ratios.__getitem__)
    finally:
        await asyncio.to_thread(bench.down)
    result["target_s"] = TARGET_S
    result["ratio"] = round(small.total_s / TARGET_S, 3)
    return result


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    try:
        with smtp_sink() as port:
            result = asyncio.run(run(work, port))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
