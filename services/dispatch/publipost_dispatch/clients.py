"""What dispatch asks other services over HTTP: merge for a mailing (its documents are a file: documents.py),
template for e-mail texts, the recipient directory for a segment's recipients (a plain e-mail)."""

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
from publipost_contracts.reads import MailingView, RecipientRecord
from publipost_refusals import NotFound

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


class UnknownSegment(NotFound):
    def __init__(self, segment_id: str) -> None:
        super().__init__(f"segment_id: no segment {segment_id!r} for this tenant")


class DirectoryClient:
    """A segment's recipients, as the directory finds them when asked (a segment is a filter, not a list)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http  # publipost_auth.service_client: calls carry this service's own credentials

    async def check_segment(self, tenant_id: str, segment_id: str) -> None:
        """UnknownSegment unless the tenant has it (another tenant's is unknown too)."""
        response = await self._http.get(_segment(segment_id), headers={TENANT: tenant_id})
        if response.status_code == 404:
            raise UnknownSegment(segment_id)
        response.raise_for_status()

    async def recipients(self, tenant_id: str, segment_id: str) -> AsyncIterator[RecipientRecord]:
        """Streamed a line at a time: a segment may hold 100,000 recipients."""
        path = f"{_segment(segment_id)}/recipients"
        async with self._http.stream("GET", path, headers={TENANT: tenant_id}) as response:
            if response.status_code == 404:
                raise UnknownSegment(segment_id)
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.strip():
                    yield RecipientRecord.model_validate_json(line)

    async def close(self) -> None:
        await self._http.aclose()


def _segment(segment_id: str) -> str:
    return f"/segments/{quote(segment_id, safe='')}"
