"""Send records stored before the history had one index are found by every filter after an upgrade."""

from datetime import UTC, datetime, timedelta

import httpx
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.settings import DispatchSettings
from publipost_storage import Storage
from pymongo import ASCENDING, DESCENDING, IndexModel

from tests.credentials import credentials

TENANT = credentials("acme")
# The indexes and the record shape the history had before.
OLD_INDEXES = [
    IndexModel([("tenant_id", ASCENDING), ("created_at", DESCENDING)]),
    IndexModel([("tenant_id", ASCENDING), ("state", ASCENDING), ("created_at", DESCENDING)]),
    IndexModel([("tenant_id", ASCENDING), ("document_type", ASCENDING), ("created_at", DESCENDING)]),
    IndexModel([("document_id", ASCENDING)]),
]


def old_record(n: int, state: str, document_type: str) -> dict[str, object]:
    at = datetime.now(UTC) - timedelta(days=3, minutes=n)
    return {
        "_id": f"old-{n}", "kind": "dispatch", "dispatch_key": "acme:d-old", "dispatch_id": "d-old",
        "tenant_id": "acme", "correlation_id": "c", "document_type": document_type, "mailing_id": "m-old",
        "mailing_name": "Notices", "document_id": f"doc-{n}", "index": n, "document_number": f"INV-{n:04d}",
        "state": state, "reason": None, "attempts": 1, "to": [f"c{n}@example.test"],
        "subject": f"Invoice INV-{n:04d}", "terms": ["inv", "invoice", "notices", f"{n:04d}"],
        "pdf_blob_id": None, "created_at": at, "finished_at": at,
    }


async def test_records_of_the_old_history_are_found_by_every_filter(make_settings, running):
    settings = make_settings(DispatchSettings)
    storage = Storage.for_service(settings)
    deliveries = storage.db["deliveries"]
    await deliveries.create_indexes(OLD_INDEXES)
    await deliveries.insert_many(
        [old_record(1, "sent", "invoice"), old_record(2, "failed", "invoice"), old_record(3, "sent", "quote")]
    )
    await storage.close()

    service = await running(build_dispatch(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://d") as http:

        async def numbers(**params: str) -> list[str]:
            page = (await http.get("/history", headers=TENANT, params=params)).json()
            return [item["document"]["document_number"] for item in page["items"]]

        everything = await numbers()
        failed = await numbers(status="failed")
        quotes = await numbers(document_type="quote")
        sent_invoices = await numbers(status="sent", document_type="invoice", q="notices")
        one_document = (await http.get("/history/documents/doc-2", headers=TENANT)).json()

    assert everything == ["INV-0001", "INV-0002", "INV-0003"]
    assert (failed, quotes, sent_invoices) == (["INV-0002"], ["INV-0003"], ["INV-0001"])
    assert [send["status"] for send in one_document] == ["failed"]
    indexes = await service.components.deliveries.collection.index_information()
    assert "tenant_id_1_created_at_-1" not in indexes and "document_id_1" not in indexes
