"""Many blobs read and written in a few round trips, in GridFS's own layout (BlobStore reads them).

BlobStore.put costs about six round trips per blob (GridFS's index check, the
delete that clears a half-written blob, the chunk and file inserts): for twenty
one-page PDFs that is more time than LibreOffice takes to lay them out. Here a
batch costs two when none of its blobs was written before, four when it
replaces some, with the same guarantees: an id fixed by the document replaces
what a crashed or earlier delivery left, and the file entry is written after
all its chunks, so a file that exists is whole.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import Binary, ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

CHUNK_SIZE = 255 * 1024  # GridFS's default, the one BlobStore writes with


@dataclass(frozen=True)
class NewBlob:
    blob_id: str
    data: bytes
    filename: str
    metadata: dict[str, Any] = field(default_factory=dict)


class BlobBatch:
    def __init__(self, database: AsyncDatabase) -> None:
        self._files = database["fs.files"]
        self._chunks = database["fs.chunks"]

    async def ensure_indexes(self) -> None:
        """The indexes GridFS itself creates on first write (same keys and options, so either may come first)."""
        await self._files.create_indexes([IndexModel([("filename", ASCENDING), ("uploadDate", ASCENDING)])])
        await self._chunks.create_indexes([IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)])

    async def infos(self, blob_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The file entries of those of `blob_ids` that exist (ids that are not ObjectIds exist nowhere)."""
        ids = [ObjectId(blob_id) for blob_id in blob_ids if ObjectId.is_valid(blob_id)]
        return {str(doc["_id"]): doc async for doc in self._files.find({"_id": {"$in": ids}})}

    async def read(self, files: Sequence[dict[str, Any]]) -> dict[str, bytes]:
        """The content of each file entry, by blob id; a file whose chunks are not all there is left out."""
        parts: dict[ObjectId, list[bytes]] = {doc["_id"]: [] for doc in files}
        cursor = self._chunks.find({"files_id": {"$in": list(parts)}}).sort([("files_id", ASCENDING), ("n", ASCENDING)])
        async for chunk in cursor:
            parts[chunk["files_id"]].append(bytes(chunk["data"]))
        contents = {}
        for doc in files:
            data = b"".join(parts[doc["_id"]])
            if len(data) == doc["length"]:
                contents[str(doc["_id"])] = data
        return contents

    async def write(self, blobs: Sequence[NewBlob]) -> None:
        if not blobs:
            return
        ids = [ObjectId(blob.blob_id) for blob in blobs]
        chunks = [
            {"files_id": blob_id, "n": n, "data": Binary(blob.data[offset : offset + CHUNK_SIZE])}
            for blob_id, blob in zip(ids, blobs, strict=True)
            for n, offset in enumerate(range(0, len(blob.data), CHUNK_SIZE))
        ]
        now = datetime.now(UTC)
        files = [
            {
                "_id": blob_id,
                "length": len(blob.data),
                "chunkSize": CHUNK_SIZE,
                "uploadDate": now,
                "filename": blob.filename,
                "metadata": blob.metadata,
            }
            for blob_id, blob in zip(ids, blobs, strict=True)
        ]
        # Every blob with data has a chunk 0: one left by an earlier write collides on (files_id, n), so
        # inserting straight away succeeds only when nothing is to be replaced.
        if all(blob.data for blob in blobs):
            try:
                await self._chunks.insert_many(chunks, ordered=False)
                await self._files.insert_many(files, ordered=False)
                return
            except BulkWriteError:
                pass
        await self._files.delete_many({"_id": {"$in": ids}})
        await self._chunks.delete_many({"files_id": {"$in": ids}})
        await self._chunks.insert_many(chunks)
        await self._files.insert_many(files)
