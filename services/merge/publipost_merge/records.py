"""Where a merge's records come from: inline in the message, or NDJSON in GridFS for large requests."""

import json
from collections.abc import AsyncIterator
from typing import Any

from publipost_contracts import MergeRequested
from publipost_storage import BlobStore


class BadRecord(ValueError):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


async def iter_records(event: MergeRequested, blobs: BlobStore) -> AsyncIterator[dict[str, Any] | BadRecord]:
    """Yield each record in order, or a BadRecord naming the line that is not a JSON object.

    A records file is read chunk by chunk, so memory stays flat however many records it holds. It must be
    the request's tenant's (its metadata's tenant_id): another tenant's file is not found, as a missing one.
    """
    if event.records is not None:
        for record in event.records:
            yield record
        return
    assert event.records_file_id is not None
    index = 0
    async for line in blobs.lines(event.records_file_id, tenant_id=event.tenant_id):
        yield _parse(index, line)
        index += 1


def _parse(index: int, line: bytes) -> dict[str, Any] | BadRecord:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return BadRecord(index, f"line {index + 1}, column {exc.colno}: not valid JSON ({exc.msg})")
    if not isinstance(record, dict):
        return BadRecord(index, f"line {index + 1}: a record must be a JSON object")
    return record
