"""A Gotenberg URL a tenant's admin set reaches only what the outbound policy allows (publipost_outbound)."""

import asyncio

import pytest
from publipost_outbound import OutboundPolicy
from publipost_render_pdf.converter import ConverterUnavailable
from publipost_render_pdf.gotenberg import GotenbergConverter


@pytest.fixture
async def local_server():
    """An HTTP server on loopback answering a PDF; yields (its URL, the connections it accepted)."""
    accepted: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\n%PDF-1.7")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", accepted
    server.close()


async def test_a_tenants_gotenberg_on_loopback_is_never_connected_to(local_server):
    url, accepted = local_server
    gotenberg = GotenbergConverter(url, 5, outbound=OutboundPolicy.of([]))
    with pytest.raises(ConverterUnavailable, match=r"is refused: 127\.0\.0\.1 is a loopback address"):
        await gotenberg.convert(b"PK docx")
    await gotenberg.close()
    assert accepted == []


async def test_allowed_or_set_by_the_platform_it_is(local_server):
    url, accepted = local_server
    for gotenberg in (GotenbergConverter(url, 5, outbound=OutboundPolicy.of(["127.0.0.0/8"])), GotenbergConverter(url, 5)):
        assert await gotenberg.convert(b"PK docx") == b"%PDF-1.7"
        await gotenberg.close()
    assert accepted == [1, 1]
