"""render-pdf against the real broker, database and LibreOffice."""

import io
import uuid
from pathlib import Path

import httpx
import pytest
from publipost_bus import Bus
from publipost_contracts import DocumentsRendered, RenderItem, RenderRequested
from publipost_merge.rendering import render_docx
from publipost_render_pdf.app import build
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_settings import ServiceSettings
from pypdf import PdfReader

from tests.support import EventTap

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def letter(n: int) -> bytes:
    return render_docx(
        SAMPLE.read_bytes(),
        {"name": f"Client Renderton{n}", "document_number": f"INV-{n:04d}", "premium": 100, "amount_due": 120},
    )


@pytest.fixture
async def render(make_settings, running, infra, namespace):
    service = await running(build(make_settings(RenderPdfSettings, restart_after=3)))
    merge = Bus(make_settings(ServiceSettings, service_name="merge"), publishes=[RenderRequested])
    await merge.start()
    async with EventTap(infra.rabbitmq_url, namespace, DocumentsRendered) as tap:
        yield service, merge, tap
    await merge.stop()


async def request(service, merge, tap, documents: dict[str, bytes], chunk: int = 0) -> DocumentsRendered:
    blobs = service.components.storage.blobs
    items = [
        RenderItem(document_id=document_id, docx_blob_id=await blobs.put(docx, f"{document_id}.docx", DOCX))
        for document_id, docx in documents.items()
    ]
    event = RenderRequested(
        tenant_id="acme", correlation_id=str(uuid.uuid4()), mailing_id="m1", chunk=chunk, documents=items
    )
    await merge.publish(event)
    return await tap.next(DocumentsRendered, lambda e: e.causation_id == str(event.event_id), timeout=60)


async def test_each_document_of_a_chunk_gets_its_pdf_with_its_own_text_and_page_count(render):
    service, merge, tap = render
    answer = await request(service, merge, tap, {f"d{n}": letter(n) for n in range(4)})

    assert [r.document_id for r in answer.results] == ["d0", "d1", "d2", "d3"]
    for n, result in enumerate(answer.results):
        assert result.error is None
        pdf = PdfReader(io.BytesIO(await service.components.storage.blobs.get(result.pdf_blob_id)))
        assert len(pdf.pages) == result.page_count >= 1
        text = " ".join(page.extract_text() for page in pdf.pages)
        assert f"Client Renderton{n}" in text
        assert f"INV-{n:04d}" in text


async def test_a_document_libreoffice_cannot_read_fails_alone_with_a_reason(render):
    service, merge, tap = render
    answer = await request(service, merge, tap, {"good": letter(1), "broken": b"PK\x03\x04 not really a document"})

    results = {r.document_id: r for r in answer.results}
    assert results["good"].pdf_blob_id and results["good"].error is None
    assert results["broken"].pdf_blob_id is None
    assert results["broken"].error


async def test_a_redelivered_chunk_reuses_the_stored_pdfs_instead_of_converting_again(render):
    service, merge, tap = render
    first = await request(service, merge, tap, {"again": letter(7)})
    conversions = sum(w["conversions"] for w in service.components.converter.describe())
    second = await request(service, merge, tap, {"again": letter(7)}, chunk=1)

    assert second.results[0].pdf_blob_id == first.results[0].pdf_blob_id
    assert sum(w["conversions"] for w in service.components.converter.describe()) == conversions


async def test_one_long_lived_libreoffice_renewed_after_n_conversions_and_reported_by_the_api(render):
    service, merge, tap = render
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://r") as http:
        before = (await http.get("/workers")).json()
        await request(service, merge, tap, {f"n{n}": letter(n) for n in range(4)})
        after = (await http.get("/workers")).json()
        ready = await http.get("/readyz")

    assert len(before) == 1 and before[0]["alive"]
    assert after[0]["conversions"] == 4
    assert after[0]["restarts"] == 1  # restart_after=3: renewed once, not once per document
    assert after[0]["soffice_pid"] != before[0]["soffice_pid"]
    assert ready.status_code == 200 and ready.json()["checks"]["libreoffice"] is True


async def test_readiness_is_false_while_libreoffice_is_down(make_settings, running):
    service = await running(build(make_settings(RenderPdfSettings)))
    await service.components.converter.stop()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://r") as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["libreoffice"] is False
