"""history: dispatch's send history filtered over 1,000,000 delivery records, through its HTTP API.

Target (issue 5): a filter on 1,000,000 records answers in under 200 ms on this
machine. The records are written straight into dispatch's collection with its
indexes (as sends would leave them: a tenant, several document types, sent /
failed / queued, subjects, names and numbers), then each filter of
GET /history is asked REPEAT times and its best and median times printed.
HISTORY_RECORDS sets another size (the writing alone takes minutes on SecantusDB).
"""

import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from publipost_auth import ApiKeyRepository, Role
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.domain import history_terms
from publipost_dispatch.settings import DispatchSettings
from publipost_localstack.processes import ensure_rabbitmq, free_port, start_secantus

RECORDS = int(os.environ.get("HISTORY_RECORDS", "1000000"))
BATCH = 5_000
REPEAT = 5
TARGET_MS = 200.0
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"
TYPES = ["invoice", "quote", "contract", "premium_receipt", "claim"]
FILTERS = {
    "none": {},
    "status=failed": {"status": "failed"},
    "document_type=quote": {"document_type": "quote"},
    "q=INV-0123456": {"q": "INV-0123456"},
    "q=reminder": {"q": "reminder"},
    "document_type+status+q": {"document_type": "invoice", "status": "sent", "q": "notices"},
    "page 20": {"page": "20"},
}


def record(n: int, started: datetime) -> dict[str, object]:
    delivery = _record(n, started)
    terms = history_terms(
        mailing_name=delivery["mailing_name"],
        document_number=delivery["document_number"],
        document_id=delivery["document_id"],
        document_type=delivery["document_type"],
        state=delivery["state"],
        subject=delivery["subject"],
    )
    return delivery | {"terms": terms}


def _record(n: int, started: datetime) -> dict[str, object]:
    number = f"INV-{n:07d}"
    name = "Reminders" if n % 10 == 0 else "Notices"
    subject = f"{'Payment reminder' if n % 10 == 0 else 'Invoice'} {number} - Client {n}"
    state = "failed" if n % 50 == 0 else ("queued" if n % 997 == 0 else "sent")
    created = started + timedelta(seconds=n)
    return {
        "_id": str(uuid.uuid4()),
        "kind": "dispatch",
        "dispatch_key": f"d{n // 1000}",
        "dispatch_id": f"d{n // 1000}",
        "tenant_id": "acme",
        "correlation_id": "bench",
        "document_type": TYPES[n % len(TYPES)],
        "mailing_id": f"m{n // 1000}",
        "mailing_name": name,
        "document_id": str(uuid.uuid5(uuid.NAMESPACE_OID, number)),
        "index": n % 1000,
        "document_number": number,
        "state": state,
        "reason": "550 5.1.1 mailbox unavailable" if state == "failed" else None,
        "attempts": 1,
        "to": [f"client{n}@example.test"],
        "subject": subject,
        "pdf_blob_id": "0" * 24,
        "created_at": created,
        "finished_at": created,
    }


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-history-"))
    port = free_port()
    database = start_secantus(port, work / "data", work, name="secantusdb")
    ensure_rabbitmq(RABBITMQ)
    settings = DispatchSettings(
        namespace="hist" + uuid.uuid4().hex[:8], mongodb_url=f"mongodb://127.0.0.1:{port}/", rabbitmq_url=RABBITMQ
    )
    service = build_dispatch(settings)
    try:
        deliveries = service.components.deliveries
        await service.migrate()
        started = datetime.now(UTC) - timedelta(seconds=RECORDS)
        began = time.perf_counter()
        for first in range(0, RECORDS, BATCH):
            await deliveries.collection.insert_many(
                [record(n, started) for n in range(first, min(RECORDS, first + BATCH))]
            )
        print(f"wrote {RECORDS:,} records in {time.perf_counter() - began:.0f} s", flush=True)
        await service.start()  # the HTTP API's dependencies, as in production
        # The history is read with an API key of the tenant, as an internal system would (no issuer needed).
        api_keys = ApiKeyRepository(service.storage.client[settings.identity_database_name])
        await api_keys.ensure_indexes()
        key = (await api_keys.create("acme", "bench-history", [Role.VIEWER], created_by="bench")).key
        results: dict[str, float] = {}
        transport = httpx.ASGITransport(service.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://dispatch", headers={"X-API-Key": key}) as http:
            for name, params in FILTERS.items():
                timings = []
                for _ in range(REPEAT):
                    began = time.perf_counter()
                    response = await http.get("/history", params=params)
                    timings.append((time.perf_counter() - began) * 1000)
                    response.raise_for_status()
                found = len(response.json()["items"])
                results[name] = min(timings)
                print(
                    f"  {name:<26} best {min(timings):7.1f} ms  median {statistics.median(timings):7.1f} ms"
                    f"  ({found} on the page)",
                    flush=True,
                )
    finally:
        await service.stop()
        database.stop()
        shutil.rmtree(work, ignore_errors=True)
    worst = max(results.values())
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        json.dumps(
            {
                "benchmark": "history",
                "value": round(worst, 1),
                "unit": f"ms (slowest filter, best of {REPEAT})",
                "reference": TARGET_MS,
                "ratio": round(worst / TARGET_MS, 3),
                "records": RECORDS,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
