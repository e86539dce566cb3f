"""The external backend: a Gotenberg server converts through its LibreOffice route over HTTP."""

import httpx
from publipost_outbound import OutboundPolicy, refusal_message

from .converter import ConversionFailed, ConverterUnavailable

ROUTE = "/forms/libreoffice/convert"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class GotenbergConverter:
    """Gotenberg answers 400 when the document is at fault; anything else that is not a PDF means
    the server is unwell (down, overloaded, timed out) and the chunk is retried later."""

    name = "gotenberg"

    def __init__(
        self,
        url: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        """`outbound`: the policy a URL a tenant's admin set must pass, at every connection (None: the
        service's own URL, from the environment)."""
        self.url = url.rstrip("/")
        if outbound is not None:
            self._client = outbound.http_client(base_url=self.url, timeout=timeout_s)
        else:
            self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, transport=transport)

    async def convert(self, docx: bytes, *, retry: bool = True, pdfa: bool = False) -> bytes:
        # `retry` is Gotenberg's business: it renews its own LibreOffice.
        try:
            response = await self._client.post(
                ROUTE,
                files={"files": ("document.docx", docx, DOCX)},
                data={"exportBookmarksToPdfDestination": "true", **({"pdfa": "PDF/A-3b"} if pdfa else {})},
            )
        except httpx.HTTPError as exc:
            if (refusal := refusal_message(exc)) is not None:
                raise ConverterUnavailable(f"Gotenberg at {self.url} is refused: {refusal}") from exc
            raise ConverterUnavailable(f"Gotenberg at {self.url} did not answer: {exc!r}") from exc
        if response.status_code == httpx.codes.BAD_REQUEST:
            raise ConversionFailed(f"Gotenberg refused the document: {response.text[:300]}")
        if response.status_code != httpx.codes.OK:
            raise ConverterUnavailable(
                f"Gotenberg at {self.url} answered {response.status_code}: {response.text[:300]}"
            )
        return response.content

    async def close(self) -> None:
        await self._client.aclose()
