"""A Gotenberg-compatible converter for tests: its LibreOffice route (POST /forms/libreoffice/convert, the
DOCX as `files`) answered by LibreOffice's own command line, so the external backend runs against a real
converter where Gotenberg's image is not available (no Docker engine here)."""

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import uvicorn
from fastapi import FastAPI, File, Form, Response, UploadFile
from publipost_localstack.processes import free_port

EXPORT = "pdf:writer_pdf_Export:" + json.dumps({"ExportBookmarksToPDFDestination": {"type": "boolean", "value": "true"}})


class GotenbergStandIn:
    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="gotenberg-"))
        self.conversions = 0
        self._one_at_a_time = asyncio.Lock()  # one LibreOffice profile: one conversion at a time
        self.app = FastAPI()
        self.app.post("/forms/libreoffice/convert")(self._convert)

    async def _convert(
        self,
        files: Annotated[UploadFile, File()],
        export_bookmarks: Annotated[str, Form(alias="exportBookmarksToPdfDestination")] = "false",
    ) -> Response:
        async with self._one_at_a_time:
            source = self.workdir / "document.docx"
            source.write_bytes(await files.read())
            out = self.workdir / "out"
            process = await asyncio.create_subprocess_exec(
                "soffice",
                f"-env:UserInstallation=file://{self.workdir / 'profile'}",
                "--headless",
                "--convert-to",
                EXPORT if export_bookmarks == "true" else "pdf",
                "--outdir",
                str(out),
                str(source),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await asyncio.wait_for(process.wait(), 120)
            pdf = out / "document.pdf"
            if not pdf.exists():
                return Response("LibreOffice failed to process a document", status_code=400)
            self.conversions += 1
            data = pdf.read_bytes()
            pdf.unlink()
            return Response(data, media_type="application/pdf")

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task
            shutil.rmtree(self.workdir, ignore_errors=True)
