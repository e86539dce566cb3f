"""The recipient directory, asked over HTTP for the recipients of a segment (a re-run merge's records)."""

from collections.abc import AsyncIterator

import httpx


class SegmentNotFound(LookupError):
    pass


class DirectoryClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http  # publipost_auth.service_client: calls carry this service's own credentials

    async def segment_records(self, tenant_id: str, segment_id: str) -> AsyncIterator[bytes]:
        """The segment's recipients as NDJSON lines, streamed (a segment can hold 100,000 recipients)."""
        async with self._http.stream(
            "GET", f"/segments/{segment_id}/recipients", headers={"X-Tenant-Id": tenant_id}
        ) as response:
            if response.status_code == 404:
                raise SegmentNotFound(f"no segment {segment_id!r} in the recipient directory")
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.strip():
                    yield line.encode() + b"\n"

    async def close(self) -> None:
        await self._http.aclose()
