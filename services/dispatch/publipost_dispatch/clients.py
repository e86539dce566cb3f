"""What dispatch asks other services over HTTP: merge for a mailing (its documents are a file: documents.py),
template for e-mail texts."""

import httpx
from publipost_contracts.reads import MailingView

from .domain import EmailText

TENANT = "X-Tenant-Id"


class MergeClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http  # publipost_auth.service_client: calls carry this service's own credentials

    async def mailing(self, tenant_id: str, mailing_id: str) -> MailingView | None:
        response = await self._http.get(f"/mailings/{mailing_id}", headers={TENANT: tenant_id})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return MailingView.model_validate_json(response.content)

    async def close(self) -> None:
        await self._http.aclose()


class EmailTemplateClient:
    """E-mail templates of the template service: subject, bodies and signature with {variables}."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http  # publipost_auth.service_client: calls carry this service's own credentials

    async def get(self, tenant_id: str, template_id: str) -> EmailText | None:
        response = await self._http.get(f"/email-templates/{template_id}", headers={TENANT: tenant_id})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body = response.json()
        return EmailText(
            subject=body["subject"], body=body["body_text"], html_body=body["body_html"], signature=body["signature"]
        )

    async def close(self) -> None:
        await self._http.aclose()
