"""Blobs written in a few round trips (BlobBatch, as render-pdf stores a chunk's PDFs) are ordinary GridFS
blobs to any service, and read back together (as dispatch reads the PDFs it attaches)."""

import os

from bson import ObjectId
from publipost_render_pdf.domain import pdf_blob_id
from publipost_storage import BlobBatch, NewBlob, Storage


async def test_blobs_written_together_read_as_gridfs_blobs_and_a_redelivery_replaces_them(infra, namespace):
    storage = Storage(infra.mongodb_url, f"{namespace}_render_pdf", f"{namespace}_blobs")
    batch = BlobBatch(storage.client[f"{namespace}_blobs"])
    large = os.urandom(600_000)  # three GridFS chunks
    try:
        await batch.ensure_indexes()
        first = [
            NewBlob(pdf_blob_id("small"), b"%PDF first", "small.pdf", {"pages": 1}),
            NewBlob(pdf_blob_id("large"), large, "large.pdf", {"pages": 3}),
        ]
        await batch.write(first)
        await batch.write([NewBlob(pdf_blob_id("small"), b"%PDF again", "small.pdf", {"pages": 1})])

        assert await storage.blobs.get(pdf_blob_id("small")) == b"%PDF again"
        assert await storage.blobs.get(pdf_blob_id("large")) == large
        assert b"".join([chunk async for chunk in storage.blobs.stream(pdf_blob_id("large"))]) == large
        assert (await storage.blobs.info(pdf_blob_id("large")))["metadata"] == {"pages": 3}
        chunks = storage.client[f"{namespace}_blobs"]["fs.chunks"]
        assert await chunks.count_documents({}) == 4  # the replaced blob left nothing behind

        docx_id = await storage.blobs.put(large, "letter.docx", "application/octet-stream")
        files = await batch.infos([docx_id, pdf_blob_id("small"), pdf_blob_id("never written"), "not-an-id"])
        assert set(files) == {docx_id, pdf_blob_id("small")}
        assert await batch.read(list(files.values())) == {docx_id: large, pdf_blob_id("small"): b"%PDF again"}
    finally:
        await storage.client.drop_database(f"{namespace}_blobs")
        await storage.client.drop_database(f"{namespace}_render_pdf")
        await storage.close()


async def test_what_a_crashed_write_left_is_replaced_and_a_fresh_batch_needs_no_clearing(infra, namespace):
    storage = Storage(infra.mongodb_url, f"{namespace}_render_pdf", f"{namespace}_blobs")
    database = storage.client[f"{namespace}_blobs"]
    batch = BlobBatch(database)
    half = pdf_blob_id("half written")
    try:
        await batch.ensure_indexes()
        # An earlier delivery stopped after the chunks of a three-chunk blob, before its file entry.
        await batch.write([NewBlob(half, os.urandom(600_000), "half.pdf")])
        await database["fs.files"].delete_one({"_id": ObjectId(half)})
        await batch.write([NewBlob(half, b"%PDF whole", "half.pdf"), NewBlob(pdf_blob_id("new"), b"%PDF new", "n.pdf")])
        await batch.write([NewBlob(pdf_blob_id("fresh"), b"%PDF fresh", "fresh.pdf")])

        assert await storage.blobs.get(half) == b"%PDF whole"
        assert await storage.blobs.get(pdf_blob_id("new")) == b"%PDF new"
        assert await storage.blobs.get(pdf_blob_id("fresh")) == b"%PDF fresh"
        assert await database["fs.chunks"].count_documents({"files_id": ObjectId(half)}) == 1
    finally:
        await storage.client.drop_database(f"{namespace}_blobs")
        await storage.client.drop_database(f"{namespace}_render_pdf")
        await storage.close()
