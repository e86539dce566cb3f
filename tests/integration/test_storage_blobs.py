"""Blobs written by the one writer (BlobStore) are ordinary GridFS blobs to any reader, cost the same
few round trips whatever is stored already, and replace what an earlier or crashed write left."""

import asyncio
import os

import pytest
from bson import ObjectId
from gridfs import AsyncGridFSBucket
from publipost_render_pdf.domain import pdf_blob_id
from publipost_storage import BlobNotFound, NewBlob, Storage
from pymongo import monitoring


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_blobs_written_together_read_as_gridfs_blobs_and_a_redelivery_replaces_them(infra, namespace):
    storage = Storage(infra.mongodb_url, f"{namespace}_render_pdf", f"{namespace}_blobs")
    blobs = storage.blobs
    large = os.urandom(600_000)  # three GridFS chunks
    try:
        first = [
            NewBlob(pdf_blob_id("small"), b"%PDF first", "small.pdf", {"pages": 1}),
            NewBlob(pdf_blob_id("large"), large, "large.pdf", {"pages": 3}),
        ]
        await blobs.put_many(first)
        await blobs.put_many([NewBlob(pdf_blob_id("small"), b"%PDF again", "small.pdf", {"pages": 1})])

        assert await blobs.get(pdf_blob_id("small")) == b"%PDF again"
        assert await blobs.get(pdf_blob_id("large")) == large
        assert b"".join([chunk async for chunk in blobs.stream(pdf_blob_id("large"))]) == large
        assert (await blobs.info(pdf_blob_id("large")))["metadata"] == {"pages": 3}
        chunks = storage.client[f"{namespace}_blobs"]["fs.chunks"]
        assert await chunks.count_documents({}) == 4  # the replaced blob left nothing behind

        docx_id = await blobs.put(large, "letter.docx", "application/octet-stream")
        files = await blobs.infos([docx_id, pdf_blob_id("small"), pdf_blob_id("never written"), "not-an-id"])
        assert set(files) == {docx_id, pdf_blob_id("small")}
        assert await blobs.read(list(files.values())) == {docx_id: large, pdf_blob_id("small"): b"%PDF again"}
        # GridFS's own reader sees them as its own.
        bucket = AsyncGridFSBucket(storage.client[f"{namespace}_blobs"])
        assert await (await bucket.open_download_stream(ObjectId(docx_id))).read() == large
    finally:
        await storage.client.drop_database(f"{namespace}_blobs")
        await storage.client.drop_database(f"{namespace}_render_pdf")
        await storage.close()


async def test_what_a_crashed_write_left_is_replaced_and_a_fresh_batch_needs_no_clearing(infra, namespace):
    storage = Storage(infra.mongodb_url, f"{namespace}_render_pdf", f"{namespace}_blobs")
    database = storage.client[f"{namespace}_blobs"]
    half = pdf_blob_id("half written")
    try:
        await storage.blobs.ensure_indexes()  # as the migration does before any service writes
        # An earlier delivery stopped after the chunks of a three-chunk blob, before its file entry.
        await storage.blobs.put_many([NewBlob(half, os.urandom(600_000), "half.pdf")])
        await database["fs.files"].delete_one({"_id": ObjectId(half)})
        await storage.blobs.put_many(
            [NewBlob(half, b"%PDF whole", "half.pdf"), NewBlob(pdf_blob_id("new"), b"%PDF new", "n.pdf")]
        )
        await storage.blobs.put_many([NewBlob(pdf_blob_id("fresh"), b"%PDF fresh", "fresh.pdf")])

        assert await storage.blobs.get(half) == b"%PDF whole"
        assert await storage.blobs.get(pdf_blob_id("new")) == b"%PDF new"
        assert await storage.blobs.get(pdf_blob_id("fresh")) == b"%PDF fresh"
        assert await database["fs.chunks"].count_documents({"files_id": ObjectId(half)}) == 1
    finally:
        await storage.client.drop_database(f"{namespace}_blobs")
        await storage.client.drop_database(f"{namespace}_render_pdf")
        await storage.close()


async def test_a_blob_costs_two_writes_and_never_asks_whether_the_store_is_empty(infra, namespace):
    """GridFS's bucket asked `find({}).limit(1)` of fs.files and fs.chunks before every upload, which the
    embedded database answers by reading every stored chunk: uploads slowed as blobs piled up."""
    listener = Commands()
    storage = Storage(infra.mongodb_url, f"{namespace}_merge", f"{namespace}_blobs")
    watched = Storage(infra.mongodb_url, f"{namespace}_merge", f"{namespace}_blobs", event_listeners=[listener])
    try:
        await storage.blobs.put(b"already there", "old.docx", "application/octet-stream")
        await watched.blobs.ensure_indexes()
        listener.seen.clear()

        blob_id = await watched.blobs.put(b"a letter", "letter.docx", "application/octet-stream", tenant_id="acme")
        streamed = await watched.blobs.put_stream(_pieces(os.urandom(1_200_000)), "records.ndjson", "application/x-ndjson")

        writes = [(name, command) for name, command in listener.seen if name != "endSessions"]
        assert [name for name, _ in writes[:2]] == ["insert", "insert"]  # chunks, then the file entry
        assert not [command for name, command in writes if name == "find" and not command.get("filter")]
        assert await storage.blobs.get(blob_id) == b"a letter"
        assert len(await storage.blobs.get(streamed)) == 1_200_000
    finally:
        await storage.client.drop_database(f"{namespace}_blobs")
        await storage.close()
        await watched.close()


async def test_a_streamed_write_that_fails_leaves_nothing(infra, namespace):
    storage = Storage(infra.mongodb_url, f"{namespace}_merge", f"{namespace}_blobs")

    async def broken():
        yield os.urandom(1_100_000)
        raise OSError("the upload was cut")

    try:
        with pytest.raises(OSError):
            await storage.blobs.put_stream(broken(), "records.ndjson", "application/x-ndjson")
        database = storage.client[f"{namespace}_blobs"]
        assert await database["fs.files"].count_documents({}) == 0
        assert await database["fs.chunks"].count_documents({}) == 0
    finally:
        await storage.client.drop_database(f"{namespace}_blobs")
        await storage.close()


async def test_writers_of_the_same_file_at_once_each_leave_a_whole_file(infra, namespace):
    """Two handlers settling one mailing wrote its documents file under one id at once: each deleted the
    other's chunks half way, and a file entry without its chunks was left (CorruptGridFile: no chunk #0)."""
    storage = Storage(infra.mongodb_url, f"{namespace}_merge", f"{namespace}_blobs")
    content = os.urandom(2_500_000)
    try:
        written = await asyncio.gather(
            *(storage.blobs.put_stream(_pieces(content), "documents.ndjson", "application/x-ndjson") for _ in range(4))
        )
        assert len(set(written)) == 4
        for blob_id in written:
            assert await storage.blobs.get(blob_id) == content
    finally:
        await storage.client.drop_database(f"{namespace}_blobs")
        await storage.close()


async def _pieces(data: bytes):
    for offset in range(0, len(data), 100_000):
        yield data[offset : offset + 100_000]


async def test_a_read_for_a_tenant_finds_only_that_tenants_blobs(infra, namespace):
    storage = Storage(infra.mongodb_url, f"{namespace}_merge", f"{namespace}_blobs")
    blobs = storage.blobs
    try:
        theirs = await blobs.put(b"%PDF acme's invoice", "i.pdf", "application/pdf", tenant_id="acme")
        unowned = await blobs.put(b"%PDF of no one", "n.pdf", "application/pdf")

        assert await blobs.get(theirs, tenant_id="acme") == b"%PDF acme's invoice"
        for blob_id in (theirs, unowned):
            with pytest.raises(BlobNotFound):
                await blobs.get(blob_id, tenant_id="globex")
        assert await blobs.get_many([theirs, unowned], tenant_id="globex") == {}
        assert list(await blobs.infos([theirs, unowned], tenant_id="acme")) == [theirs]
        assert await blobs.get_many([theirs, unowned]) == {theirs: b"%PDF acme's invoice", unowned: b"%PDF of no one"}
    finally:
        await storage.close()
