"""What merge asks another service over HTTP: a template, and the recipients of a directory segment (dispatch's
outcomes come as a file: dispatch.completed)."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
from publipost_refusals import NotFound

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
    entity_type: str = "client"
    invoice_mapping: dict[str, str] = field(default_factory=dict)


class TemplateClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http  # publipost_auth.service_client: calls carry this service's own credentials

    async def get(self, tenant_id: str, template_id: str, version: int | None = None) -> TemplateRef | None:
        """The template at `version` (the latest when None), or None when it does not exist."""
        params = {"version": version} if version is not None else {}
        path = f"/templates/{quote(template_id, safe='')}"
        response = await self._http.get(path, params=params, headers={TENANT: tenant_id})
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
            entity_type=body.get("entity_type", "client"),
            invoice_mapping=body.get("invoice_mapping", {}),
        )

    async def close(self) -> None:
        await self._http.aclose()


class SegmentNotFound(NotFound):
    pass


class DirectoryClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http  # publipost_auth.service_client: calls carry this service's own credentials

    async def segment_records(self, tenant_id: str, segment_id: str) -> AsyncIterator[bytes]:
        """The segment's recipients as merge records, NDJSON lines streamed as the directory sends them (a
        segment can hold 100,000 recipients); SegmentNotFound for a segment the tenant does not have."""
        path = f"/segments/{quote(segment_id, safe='')}/recipients"
        async with self._http.stream("GET", path, headers={TENANT: tenant_id}) as response:
            if response.status_code == 404:
                raise SegmentNotFound(f"segment_id: no segment {segment_id!r} in this tenant's recipient directory")
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.strip():
                    yield line.encode()

    async def close(self) -> None:
        await self._http.aclose()
