"""The other services merge asks over HTTP: templates, and dispatch's delivery outcomes."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

TENANT = "X-Tenant-Id"


@dataclass(frozen=True)
class TemplateRef:
    template_id: str
    name: str
    version: int
    blob_id: str
    fields: list[str]


class TemplateClient:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    async def get(self, tenant_id: str, template_id: str) -> TemplateRef | None:
        response = await self._http.get(f"/templates/{template_id}", headers={TENANT: tenant_id})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body = response.json()
        return TemplateRef(body["id"], body["name"], body["version"], body["blob_id"], body["fields"])

    async def close(self) -> None:
        await self._http.aclose()


class DispatchClient:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    async def failed_document_ids(self, tenant_id: str, dispatch_id: str) -> AsyncIterator[str]:
        """Every failed document of a dispatch, page by page (the completion event lists only the first ones)."""
        after = -1
        while True:
            response = await self._http.get(
                f"/dispatches/{dispatch_id}/deliveries",
                params={"outcome": "failed", "after": after, "limit": 1000},
                headers={TENANT: tenant_id},
            )
            response.raise_for_status()
            page = response.json()
            for item in page["items"]:
                yield item["document_id"]
            if page["next_after"] is None:
                return
            after = page["next_after"]

    async def close(self) -> None:
        await self._http.aclose()
