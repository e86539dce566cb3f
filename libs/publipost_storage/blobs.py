"""Blobs (templates, DOCX, PDF, print-file parts, records files) in GridFS's layout, by string id.

This is the one writer. It never uploads through AsyncGridFSBucket: before each upload the bucket asks
whether `fs.files` and `fs.chunks` are empty, to decide whether to create its indexes, and the
embedded database answers that by reading every stored chunk, so each upload cost more as blobs
piled up. The same indexes are made once (`ensure_indexes`, at a service's start, and before a
writer's first write), and writes go straight to the two collections:

- a blob's chunks are written before its file entry, so a file entry that exists is whole;
- a batch of new blobs costs two round trips; an id fixed by what the blob is (say, the PDF of one
  document) replaces what an earlier or crashed write left, at the cost of two more.

Reads go through the bucket, whose downloads look blobs up by id (indexed) and check nothing else.

Every blob names its tenant (`metadata.tenant_id`). A read on behalf of a tenant (a request naming a blob
id, a download) passes `tenant_id=`: a blob of another tenant, or of none, is then not found, exactly as a
missing one, so an id guessed or copied from elsewhere reads nothing and tells nothing.
"""

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import Binary, ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket, NoFile
from pydantic import BaseModel
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

CHUNK_SIZE = 255 * 1024  # GridFS's default
STREAM_BATCH = 4  # chunks of a streamed blob inserted together (about 1 MB a round trip)


NDJSON = "application/x-ndjson"


class BlobNotFound(LookupError):
    def __init__(self, blob_id: str) -> None:
        super().__init__(f"no blob with id {blob_id!r}")
        self.blob_id = blob_id


@dataclass(frozen=True)
class NewBlob:
    blob_id: str
    data: bytes
    filename: str
    metadata: dict[str, Any] = field(default_factory=dict)


def derived_blob_id(*parts: str) -> str:
    """A blob id fixed by what the blob is (say, the PDF of one document), so a retried write replaces, never adds."""
    return str(ObjectId(hashlib.sha256("\x1f".join(parts).encode()).digest()[:12]))


def _object_id(blob_id: str) -> ObjectId:
    try:
        return ObjectId(blob_id)
    except (InvalidId, TypeError) as exc:
        raise BlobNotFound(blob_id) from exc


def _file_entry(blob_id: ObjectId, length: int, filename: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "_id": blob_id,
        "length": length,
        "chunkSize": CHUNK_SIZE,
        "uploadDate": datetime.now(UTC),
        "filename": filename,
        "metadata": metadata,
    }


def _chunks_of(blob_id: ObjectId, data: bytes, first: int = 0) -> list[dict[str, Any]]:
    return [
        {"files_id": blob_id, "n": first + n, "data": Binary(data[offset : offset + CHUNK_SIZE])}
        for n, offset in enumerate(range(0, len(data), CHUNK_SIZE))
    ]


def belongs_to(metadata: dict[str, Any] | None, tenant_id: str) -> bool:
    """Whether a blob's metadata names `tenant_id` as its tenant (a blob naming none belongs to no one)."""
    return isinstance(metadata, dict) and metadata.get("tenant_id") == tenant_id


class BlobStore:
    def __init__(self, database: AsyncDatabase) -> None:
        self._bucket = AsyncGridFSBucket(database)
        self._files = database["fs.files"]
        self._chunks = database["fs.chunks"]

    async def ensure_indexes(self) -> None:
        """The indexes GridFS's own writers create (same keys and options, so either may come first). Made by
        the migration (publipost_storage.schema), never by a write: the unique (files_id, n) index is what
        tells a new blob from one to replace, so a store is migrated before anything writes to it."""
        await self._files.create_indexes([IndexModel([("filename", ASCENDING), ("uploadDate", ASCENDING)])])
        await self._chunks.create_indexes([IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)])

    # --- writing --------------------------------------------------------------------------

    async def put(
        self, data: bytes, filename: str, content_type: str, *, blob_id: str | None = None, **metadata: Any
    ) -> str:
        """Store a blob; with `blob_id`, any earlier (or half-written) blob of that id is replaced."""
        blob_id = blob_id or str(ObjectId())
        await self.put_many([NewBlob(blob_id, data, filename, {"content_type": content_type, **metadata})])
        return blob_id

    async def put_many(self, blobs: Sequence[NewBlob]) -> None:
        """Store many blobs in a few round trips; each replaces an earlier blob of its id."""
        if not blobs:
            return
        ids = [_object_id(blob.blob_id) for blob in blobs]
        chunks = [chunk for blob_id, blob in zip(ids, blobs, strict=True) for chunk in _chunks_of(blob_id, blob.data)]
        files = [
            _file_entry(blob_id, len(blob.data), blob.filename, blob.metadata)
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
        if chunks:
            await self._chunks.insert_many(chunks)
        await self._files.insert_many(files)

    async def put_stream(self, pieces: AsyncIterable[bytes], filename: str, content_type: str, **metadata: Any) -> str:
        """Store a blob written piece by piece (never whole in memory), under a new id; a failed write leaves
        nothing. Never under a given id: two writers of one id (two handlers settling the same mailing) would
        delete each other's chunks half way and leave a file entry without its chunks."""
        oid = ObjectId()
        pending, written, length = b"", 0, 0
        try:
            async for piece in pieces:
                pending += piece
                length += len(piece)
                whole = len(pending) // CHUNK_SIZE * CHUNK_SIZE
                if whole >= STREAM_BATCH * CHUNK_SIZE:
                    chunks = _chunks_of(oid, pending[:whole], first=written)
                    await self._chunks.insert_many(chunks)
                    written += len(chunks)
                    pending = pending[whole:]
            if pending:
                await self._chunks.insert_many(_chunks_of(oid, pending, first=written))
            await self._files.insert_one(_file_entry(oid, length, filename, {"content_type": content_type, **metadata}))
        except BaseException:
            await self._chunks.delete_many({"files_id": oid})
            raise
        return str(oid)

    async def put_lines(self, items: AsyncIterable[BaseModel], filename: str, **metadata: Any) -> str:
        """An NDJSON file, one model a line, written as the items come (read back with `lines`), under a new id."""

        async def encoded() -> AsyncIterator[bytes]:
            async for item in items:
                yield item.model_dump_json().encode() + b"\n"

        return await self.put_stream(encoded(), filename, NDJSON, **metadata)

    # --- reading --------------------------------------------------------------------------

    async def exists(self, blob_id: str) -> bool:
        return await self._files.find_one({"_id": _object_id(blob_id)}, {"_id": 1}) is not None

    async def get(self, blob_id: str, *, tenant_id: str | None = None) -> bytes:
        """The whole blob; with `tenant_id`, only a blob of that tenant is found."""
        try:
            stream = await self._bucket.open_download_stream(_object_id(blob_id))
        except NoFile as exc:
            raise BlobNotFound(blob_id) from exc
        if tenant_id is not None and not belongs_to(stream.metadata, tenant_id):
            raise BlobNotFound(blob_id)
        return await stream.read()

    async def stream(self, blob_id: str, *, tenant_id: str | None = None) -> AsyncIterator[bytes]:
        """Yield the blob chunk by chunk, so a large file never sits whole in memory; with `tenant_id`, only a
        blob of that tenant is found."""
        try:
            stream = await self._bucket.open_download_stream(_object_id(blob_id))
        except NoFile as exc:
            raise BlobNotFound(blob_id) from exc
        if tenant_id is not None and not belongs_to(stream.metadata, tenant_id):
            raise BlobNotFound(blob_id)
        while chunk := await stream.readchunk():
            yield chunk

    async def lines(self, blob_id: str, *, tenant_id: str | None = None) -> AsyncIterator[bytes]:
        """The blob's non-blank lines (an NDJSON file), read chunk by chunk: memory stays flat however many
        lines it holds. With `tenant_id`, only a blob of that tenant is found."""
        pending = b""
        async for chunk in self.stream(blob_id, tenant_id=tenant_id):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.strip():
                    yield line
        if pending.strip():
            yield pending

    async def info(self, blob_id: str, *, tenant_id: str | None = None) -> dict[str, Any]:
        """The blob's file entry; with `tenant_id`, only a blob of that tenant is found."""
        doc = await self._files.find_one({"_id": _object_id(blob_id)})
        if doc is None or (tenant_id is not None and not belongs_to(doc.get("metadata"), tenant_id)):
            raise BlobNotFound(blob_id)
        return doc

    async def infos(self, blob_ids: Sequence[str], *, tenant_id: str | None = None) -> dict[str, dict[str, Any]]:
        """The file entries of those of `blob_ids` that exist (ids that are not ObjectIds exist nowhere); with
        `tenant_id`, only that tenant's."""
        ids = [ObjectId(blob_id) for blob_id in blob_ids if ObjectId.is_valid(blob_id)]
        return {
            str(doc["_id"]): doc
            async for doc in self._files.find({"_id": {"$in": ids}})
            if tenant_id is None or belongs_to(doc.get("metadata"), tenant_id)
        }

    async def read(self, files: Sequence[dict[str, Any]]) -> dict[str, bytes]:
        """The content of each file entry (from `infos`), by blob id, in one round trip; a file whose
        chunks are not all there is left out."""
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

    async def get_many(self, blob_ids: Sequence[str], *, tenant_id: str | None = None) -> dict[str, bytes]:
        """The content of those of `blob_ids` that exist whole (with `tenant_id`, only that tenant's), by id,
        in two round trips."""
        return await self.read(list((await self.infos(blob_ids, tenant_id=tenant_id)).values()))

    # --- deleting -------------------------------------------------------------------------

    async def delete(self, blob_id: str) -> None:
        """Delete a blob; deleting one already gone is not an error (deletes are retried)."""
        await self.delete_many([blob_id])

    async def delete_many(self, blob_ids: Sequence[str]) -> None:
        """File entries first, so no reader finds a blob whose chunks are going."""
        ids = [ObjectId(blob_id) for blob_id in blob_ids if ObjectId.is_valid(blob_id)]
        if ids:
            await self._files.delete_many({"_id": {"$in": ids}})
            await self._chunks.delete_many({"files_id": {"$in": ids}})
