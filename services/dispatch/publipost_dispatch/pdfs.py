"""Reading the PDFs to attach, many at once: GridFS's two collections (fs.files, fs.chunks, the
layout the GridFS specification fixes) queried for a whole batch of sends in two round trips."""

from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from publipost_storage import BlobNotFound
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from .batching import Coalescer


class PdfReader:
    def __init__(self, blob_database: AsyncDatabase) -> None:
        self._files = blob_database["fs.files"]
        self._chunks = blob_database["fs.chunks"]
        self._reads = Coalescer(self._read_many)

    async def get(self, blob_id: str) -> bytes:
        found = await self._reads(blob_id)
        if isinstance(found, BlobNotFound):
            raise found
        return found

    async def _read_many(self, blob_ids: list[str]) -> list[bytes | BlobNotFound]:
        ids: dict[str, ObjectId] = {}
        for blob_id in blob_ids:
            try:
                ids[blob_id] = ObjectId(blob_id)
            except (InvalidId, TypeError):
                pass
        wanted = list(set(ids.values()))
        lengths = {doc["_id"]: doc["length"] async for doc in self._files.find({"_id": {"$in": wanted}}, {"length": 1})}
        parts: dict[ObjectId, list[Any]] = {}
        cursor = self._chunks.find({"files_id": {"$in": list(lengths)}}).sort([("files_id", ASCENDING), ("n", ASCENDING)])
        async for chunk in cursor:
            parts.setdefault(chunk["files_id"], []).append(bytes(chunk["data"]))
        results: list[bytes | BlobNotFound] = []
        for blob_id in blob_ids:
            oid = ids.get(blob_id)
            data = b"".join(parts.get(oid, [])) if oid in lengths else None
            # A file whose chunks do not add up to its length is still being written (or was cut short).
            results.append(data if data is not None and len(data) == lengths[oid] else BlobNotFound(blob_id))
        return results
