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
    custom_fields: list[str]
    template_type: str
    auto_pdf: bool
    validation_required: bool


class TemplateClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http  # publipost_auth.service_client: calls carry this service's own credentials

    async def get(self, tenant_id: str, template_id: str, version: int | None = None) -> TemplateRef | None:
        """The template at `version` (the latest when None), or None when it does not exist."""
        params = {"version": version} if version is not None else {}
        response = await self._http.get(f"/templates/{template_id}", params=params, headers={TENANT: tenant_id})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body = response.json()
        return TemplateRef(
            template_id=body["id"],
            name=body["name"],
            version=body["version"],
            blob_id=body["blob_id"],
            fields=body["fields"],
            custom_fields=body.get("custom_fields", []),
            template_type=body.get("template_type", "standard"),
            auto_pdf=body.get("auto_pdf", True),
            validation_required=body.get("validation_required", False),
        )

    async def close(self) -> None:
        await self._http.aclose()


class DispatchClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http  # publipost_auth.service_client: calls carry this service's own credentials

    async def failed_document_ids(self, tenant_id: str, dispatch_id: str) -> AsyncIterator[str]:
        """Every document of a dispatch not sent (failed, or maybe delivered: a person decides), page by page
        (the completion event lists only the first ones)."""
        after = -1
        while True:
            response = await self._http.get(
                f"/dispatches/{dispatch_id}/deliveries",
                params={"outcome": "not_sent", "after": after, "limit": 1000},
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
