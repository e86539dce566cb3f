"""The Gotenberg backend's requests and how it reads the answers (httpx.MockTransport, no server).

Converting against a real Gotenberg needs one running (docs/render-pdf.md).
"""

import httpx
import pytest
from publipost_render_pdf.converter import ConversionFailed, ConverterUnavailable
from publipost_render_pdf.gotenberg import GotenbergConverter

DOCX = b"PK\x03\x04 a docx"


def converter(answer) -> tuple[GotenbergConverter, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    return GotenbergConverter("http://gotenberg:3000/", 30, transport=httpx.MockTransport(handle)), seen


async def test_the_document_is_posted_to_the_libreoffice_route_with_bookmarks_as_destinations():
    gotenberg, seen = converter(lambda _: httpx.Response(200, content=b"%PDF-1.7 ..."))

    pdf = await gotenberg.convert(DOCX)

    request = seen[0]
    body = request.read()
    assert pdf == b"%PDF-1.7 ..."
    assert (request.method, str(request.url)) == ("POST", "http://gotenberg:3000/forms/libreoffice/convert")
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="files"; filename="document.docx"' in body
    assert b"Content-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document" in body
    assert DOCX in body
    assert b'name="exportBookmarksToPdfDestination"\r\n\r\ntrue' in body
    await gotenberg.close()


async def test_a_document_gotenberg_refuses_fails_alone():
    gotenberg, _ = converter(lambda _: httpx.Response(400, text="LibreOffice failed to process a document"))
    with pytest.raises(ConversionFailed, match="Gotenberg refused the document: LibreOffice failed"):
        await gotenberg.convert(DOCX)


@pytest.mark.parametrize("status", [500, 503, 504])
async def test_a_server_in_trouble_makes_the_chunk_wait_for_a_retry(status):
    gotenberg, _ = converter(lambda _: httpx.Response(status, text="timeout"))
    with pytest.raises(ConverterUnavailable, match=f"answered {status}"):
        await gotenberg.convert(DOCX)


async def test_a_server_that_does_not_answer_makes_the_chunk_wait_for_a_retry():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    gotenberg, _ = converter(refuse)
    with pytest.raises(ConverterUnavailable, match="did not answer"):
        await gotenberg.convert(DOCX)
