"""What merge asks another service over HTTP: a template (dispatch's outcomes come as a file: dispatch.completed)."""

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
