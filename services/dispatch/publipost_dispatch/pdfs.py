"""Reading the PDFs to attach, many at once: the sends in flight share two round trips."""

from publipost_storage import BlobNotFound, BlobStore

from .batching import Coalescer


class PdfReader:
    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._reads = Coalescer(self._read_many)

    async def get(self, blob_id: str) -> bytes:
        found = await self._reads(blob_id)
        if isinstance(found, BlobNotFound):
            raise found
        return found

    async def _read_many(self, blob_ids: list[str]) -> list[bytes | BlobNotFound]:
        # A file whose chunks do not add up to its length is still being written (or was cut short): left out.
        contents = await self._blobs.get_many(list(set(blob_ids)))
        return [contents[blob_id] if blob_id in contents else BlobNotFound(blob_id) for blob_id in blob_ids]
