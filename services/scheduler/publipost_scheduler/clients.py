"""What the scheduler asks other services over HTTP, always for the tenant of the campaign: the recipients of
a segment (a re-run merge's records), and whether what a campaign names exists in that tenant."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

TENANT = "X-Tenant-Id"


class SegmentNotFound(LookupError):
    pass


class TargetsUnavailable(RuntimeError):
    """A service that says whether a campaign's mailing, template or segment exists did not answer."""


class DirectoryClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http  # publipost_auth.service_client: calls carry this service's own credentials

    async def segment_records(self, tenant_id: str, segment_id: str) -> AsyncIterator[bytes]:
        """The segment's recipients as NDJSON lines, streamed (a segment can hold 100,000 recipients)."""
        async with self._http.stream(
            "GET", f"/segments/{quote(segment_id, safe='')}/recipients", headers={TENANT: tenant_id}
        ) as response:
            if response.status_code == 404:
                raise SegmentNotFound(f"no segment {segment_id!r} in the recipient directory")
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.strip():
                    yield line.encode() + b"\n"

    async def close(self) -> None:
        await self._http.aclose()


@dataclass(frozen=True)
class Targets:
    """Whether the mailing, template or segment a campaign names is the tenant's: each service answers for
    its own, with the tenant named by the call (404 for another tenant's, as for one that does not exist)."""

    merge_http: httpx.AsyncClient
    template_http: httpx.AsyncClient
    directory_http: httpx.AsyncClient
    dispatch_http: httpx.AsyncClient  # without the scheduler's credentials: each call carries the caller's

    async def has_mailing(self, tenant_id: str, mailing_id: str) -> bool:
        return await self._exists(self.merge_http, f"/mailings/{quote(mailing_id, safe='')}", tenant_id)

    async def has_template(self, tenant_id: str, template_id: str, version: int | None) -> bool:
        params = {"version": version} if version is not None else {}
        return await self._exists(self.template_http, f"/templates/{quote(template_id, safe='')}", tenant_id, params)

    async def has_email_template(self, tenant_id: str, email_template_id: str) -> bool:
        return await self._exists(self.template_http, f"/email-templates/{quote(email_template_id, safe='')}", tenant_id)

    async def has_account(self, tenant_id: str, account_id: str, caller_credentials: dict[str, str]) -> bool:
        """Whether the campaign's author may send through the account: dispatch answers as it will when the
        campaign sends as them, so the call carries the author's own credentials, not the scheduler's."""
        path = f"/accounts/{quote(account_id, safe='')}"
        return await self._exists(self.dispatch_http, path, tenant_id, headers=caller_credentials)

    async def has_segment(self, tenant_id: str, segment_id: str) -> bool:
        return await self._exists(self.directory_http, f"/segments/{quote(segment_id, safe='')}", tenant_id)

    @staticmethod
    async def _exists(
        http: httpx.AsyncClient,
        path: str,
        tenant_id: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> bool:
        try:
            response = await http.get(path, params=params or {}, headers={TENANT: tenant_id, **(headers or {})})
        except httpx.HTTPError as exc:
            raise TargetsUnavailable(f"{http.base_url} did not answer ({type(exc).__name__})") from exc
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise TargetsUnavailable(f"{http.base_url}{path} answered {response.status_code}")
        return True

    async def close(self) -> None:
        for http in (self.merge_http, self.template_http, self.dispatch_http):  # the directory's is DirectoryClient's, closed there
            await http.aclose()
