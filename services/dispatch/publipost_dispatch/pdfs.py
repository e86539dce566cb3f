"""Reading the PDFs to attach, many at once: the sends in flight share one round trip."""

from bson import ObjectId
from publipost_storage import BlobNotFound, BlobStore

from .batching import Coalescer


class PdfReader:
    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._reads = Coalescer(self._read_many)

    async def get(self, blob_id: str, length: int | None = None) -> bytes:
        """The PDF; `length`, when the fan-out found the file whole (see handlers._fan_out), spares
        reading its file entry again."""
        found = await self._reads((blob_id, length))
        if isinstance(found, BlobNotFound):
            raise found
        return found

    async def _read_many(self, wanted: list[tuple[str, int | None]]) -> list[bytes | BlobNotFound]:
        # A file whose chunks do not add up to its length is still being written, was cut short or was
        # replaced since the fan-out: read again through its file entry, or left out.
        known = {blob_id: length for blob_id, length in wanted if length is not None and ObjectId.is_valid(blob_id)}
        files = [{"_id": ObjectId(blob_id), "length": n} for blob_id, n in known.items()]
        contents = await self._blobs.read(files) if files else {}
        unread = list({blob_id for blob_id, _ in wanted if blob_id not in contents})
        if unread:
            contents |= await self._blobs.get_many(unread)
        return [contents[blob_id] if blob_id in contents else BlobNotFound(blob_id) for blob_id, _ in wanted]
