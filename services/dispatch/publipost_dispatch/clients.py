"""What dispatch asks the merge service: a mailing and its documents."""

from collections.abc import AsyncIterator
from typing import Any

import httpx

TENANT = "X-Tenant-Id"


class MergeClient:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    async def mailing(self, tenant_id: str, mailing_id: str) -> dict[str, Any] | None:
        response = await self._http.get(f"/mailings/{mailing_id}", headers={TENANT: tenant_id})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    async def documents(self, tenant_id: str, mailing_id: str) -> AsyncIterator[dict[str, Any]]:
        after = -1
        while True:
            response = await self._http.get(
                f"/mailings/{mailing_id}/documents", params={"after": after, "limit": 500}, headers={TENANT: tenant_id}
            )
            response.raise_for_status()
            page = response.json()
            for document in page["items"]:
                yield document
            if page["next_after"] is None:
                return
            after = page["next_after"]

    async def close(self) -> None:
        await self._http.aclose()
