"""Reading the PDFs to attach, many at once: the sends in flight share one round trip."""

from bson import ObjectId
from publipost_storage import BlobNotFound, BlobStore

from .batching import Coalescer


class PdfReader:
    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._reads = Coalescer(self._read_many)

    async def get(self, tenant_id: str, blob_id: str, length: int | None = None) -> bytes:
        """The tenant's PDF; `length`, when the fan-out found the file whole and the tenant's (see
        fan_out._fan_out), spares reading its file entry again."""
        found = await self._reads((tenant_id, blob_id, length))
        if isinstance(found, BlobNotFound):
            raise found
        return found

    async def _read_many(self, wanted: list[tuple[str, str, int | None]]) -> list[bytes | BlobNotFound]:
        # A file whose chunks do not add up to its length is still being written, was cut short or was
        # replaced since the fan-out: read again through its file entry (the tenant's only), or left out.
        known = {blob_id: n for _, blob_id, n in wanted if n is not None and ObjectId.is_valid(blob_id)}
        files = [{"_id": ObjectId(blob_id), "length": n} for blob_id, n in known.items()]
        contents = await self._blobs.read(files) if files else {}
        unread: dict[str, set[str]] = {}
        for tenant_id, blob_id, _ in wanted:
            if blob_id not in contents:
                unread.setdefault(tenant_id, set()).add(blob_id)
        found = dict(contents)
        for tenant_id, blob_ids in unread.items():
            found |= await self._blobs.get_many(list(blob_ids), tenant_id=tenant_id)
        return [found[blob_id] if blob_id in found else BlobNotFound(blob_id) for _, blob_id, _ in wanted]
