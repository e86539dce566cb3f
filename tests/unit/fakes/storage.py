"""In-memory stand-ins for publipost_storage's blob store and connection, and for the bus's inbox: what a
handler sees of them, with the same refusals (a blob of another tenant is not found)."""

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from publipost_storage import BlobNotFound, NewBlob, belongs_to
from pydantic import BaseModel


class FakeBlobStore:
    def __init__(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}

    async def put(
        self, data: bytes, filename: str, content_type: str, *, blob_id: str | None = None, **metadata: Any
    ) -> str:
        blob_id = blob_id or str(ObjectId())
        await self.put_many([NewBlob(blob_id, data, filename, {"content_type": content_type, **metadata})])
        return blob_id

    async def put_many(self, blobs: Sequence[NewBlob]) -> None:
        for blob in blobs:
            self.files[blob.blob_id] = {
                "_id": ObjectId(blob.blob_id),
                "length": len(blob.data),
                "filename": blob.filename,
                "uploadDate": datetime.now(UTC),
                "metadata": blob.metadata,
            }
            self.contents[blob.blob_id] = blob.data

    async def put_stream(self, pieces: AsyncIterable[bytes], filename: str, content_type: str, **metadata: Any) -> str:
        data = b"".join([piece async for piece in pieces])
        return await self.put(data, filename, content_type, **metadata)

    async def put_lines(self, items: AsyncIterable[BaseModel], filename: str, **metadata: Any) -> str:
        data = b"".join([item.model_dump_json().encode() + b"\n" async for item in items])
        return await self.put(data, filename, "application/x-ndjson", **metadata)

    async def exists(self, blob_id: str) -> bool:
        return blob_id in self.files

    async def info(self, blob_id: str, *, tenant_id: str | None = None) -> dict[str, Any]:
        file = self.files.get(blob_id)
        if file is None or (tenant_id is not None and not belongs_to(file["metadata"], tenant_id)):
            raise BlobNotFound(blob_id)
        return file

    async def get(self, blob_id: str, *, tenant_id: str | None = None) -> bytes:
        await self.info(blob_id, tenant_id=tenant_id)
        return self.contents[blob_id]

    async def stream(self, blob_id: str, *, tenant_id: str | None = None) -> AsyncIterator[bytes]:
        yield await self.get(blob_id, tenant_id=tenant_id)

    async def lines(self, blob_id: str, *, tenant_id: str | None = None) -> AsyncIterator[bytes]:
        for line in (await self.get(blob_id, tenant_id=tenant_id)).split(b"\n"):
            if line.strip():
                yield line

    async def infos(self, blob_ids: Sequence[str], *, tenant_id: str | None = None) -> dict[str, dict[str, Any]]:
        return {
            blob_id: self.files[blob_id]
            for blob_id in blob_ids
            if blob_id in self.files and (tenant_id is None or belongs_to(self.files[blob_id]["metadata"], tenant_id))
        }

    async def get_many(self, blob_ids: Sequence[str], *, tenant_id: str | None = None) -> dict[str, bytes]:
        return {blob_id: self.contents[blob_id] for blob_id in await self.infos(blob_ids, tenant_id=tenant_id)}

    async def delete(self, blob_id: str) -> None:
        await self.delete_many([blob_id])

    async def delete_many(self, blob_ids: Sequence[str]) -> None:
        for blob_id in blob_ids:
            self.files.pop(blob_id, None)
            self.contents.pop(blob_id, None)


class FakeStorage:
    """What handlers use of publipost_storage.Storage: the blobs (their collections come as repositories)."""

    def __init__(self) -> None:
        self.blobs = FakeBlobStore()

    async def ping(self, timeout_s: float = 0.8) -> bool:
        return True

    async def close(self) -> None:
        return None


class FakeInbox:
    """publipost_idempotency.ProcessedMessages in memory: a message handled once is skipped after."""

    def __init__(self) -> None:
        self.processed: set[tuple[str, str]] = set()

    async def already_processed(self, consumer: str, event_id: str) -> bool:
        return (consumer, event_id) in self.processed

    async def mark(self, consumer: str, event_id: str) -> None:
        self.processed.add((consumer, event_id))

    async def ensure_indexes(self) -> None:
        return None
