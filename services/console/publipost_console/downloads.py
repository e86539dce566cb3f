"""A service's file passed on to the browser as it arrives, with the person's token, never held whole."""

from collections.abc import AsyncIterator

from fastapi.responses import Response, StreamingResponse

from .web import Console

# The service's headers a download keeps: what the file is and its name.
DOWNLOAD_HEADERS = ("content-type", "content-disposition", "content-length")


async def pass_through(parts: Console, service: str, token: str, path: str) -> Response:
    opened = parts.services.stream(service, path, token)
    upstream = await opened.__aenter__()

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_bytes():
                yield chunk
        finally:
            await opened.__aexit__(None, None, None)

    headers = {name: upstream.headers[name] for name in DOWNLOAD_HEADERS if name in upstream.headers}
    return StreamingResponse(body(), headers=headers)
