import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket, NoFile
from pymongo.asynchronous.database import AsyncDatabase


class BlobNotFound(LookupError):
    def __init__(self, blob_id: str) -> None:
        super().__init__(f"no blob with id {blob_id!r}")
        self.blob_id = blob_id


def derived_blob_id(*parts: str) -> str:
    """A blob id fixed by what the blob is (say, the PDF of one document), so a retried write replaces, never adds."""
    return str(ObjectId(hashlib.sha256("\x1f".join(parts).encode()).digest()[:12]))


def _object_id(blob_id: str) -> ObjectId:
    try:
        return ObjectId(blob_id)
    except (InvalidId, TypeError) as exc:
        raise BlobNotFound(blob_id) from exc


class BlobStore:
    """Templates, documents, PDFs and parts in GridFS, addressed by a string id."""

    CHUNK = 255 * 1024

    def __init__(self, database: AsyncDatabase) -> None:
        self._bucket = AsyncGridFSBucket(database)
        self._files = database["fs.files"]

    async def put(
        self, data: bytes, filename: str, content_type: str, *, blob_id: str | None = None, **metadata: Any
    ) -> str:
        """Store a blob; with `blob_id`, any earlier (or half-written) blob of that id is replaced."""
        metadata = {"content_type": content_type, **metadata}
        if blob_id is None:
            return str(await self._bucket.upload_from_stream(filename, data, metadata=metadata))
        await self.delete(blob_id)  # also removes chunks a crashed upload left behind
        await self._bucket.upload_from_stream_with_id(_object_id(blob_id), filename, data, metadata=metadata)
        return blob_id

    async def put_stream(
        self, chunks: AsyncIterable[bytes], filename: str, content_type: str, *, blob_id: str, **metadata: Any
    ) -> str:
        """Store a blob written piece by piece (never whole in memory); a failed write leaves nothing."""
        await self.delete(blob_id)
        stream = self._bucket.open_upload_stream_with_id(
            _object_id(blob_id), filename, metadata={"content_type": content_type, **metadata}
        )
        try:
            async for chunk in chunks:
                await stream.write(chunk)
        except BaseException:
            await stream.abort()
            raise
        await stream.close()
        return blob_id

    async def exists(self, blob_id: str) -> bool:
        return await self._files.find_one({"_id": _object_id(blob_id)}, {"_id": 1}) is not None

    async def get(self, blob_id: str) -> bytes:
        try:
            stream = await self._bucket.open_download_stream(_object_id(blob_id))
        except NoFile as exc:
            raise BlobNotFound(blob_id) from exc
        return await stream.read()

    async def stream(self, blob_id: str) -> AsyncIterator[bytes]:
        """Yield the blob chunk by chunk, so a large file never sits whole in memory."""
        try:
            stream = await self._bucket.open_download_stream(_object_id(blob_id))
        except NoFile as exc:
            raise BlobNotFound(blob_id) from exc
        while chunk := await stream.readchunk():
            yield chunk

    async def info(self, blob_id: str) -> dict[str, Any]:
        doc = await self._files.find_one({"_id": _object_id(blob_id)})
        if doc is None:
            raise BlobNotFound(blob_id)
        return doc

    async def delete(self, blob_id: str) -> None:
        """Delete a blob; deleting one already gone is not an error (deletes are retried)."""
        try:
            await self._bucket.delete(_object_id(blob_id))
        except (NoFile, BlobNotFound):
            pass
