"""render.requested → convert each document of the chunk, store its PDF, answer documents.rendered."""

import asyncio

from publipost_contracts import DocumentsRendered, RenderItem, RenderRequested, RenderResult
from publipost_logging import get_logger
from publipost_storage import BlobNotFound

from .context import RenderContext
from .converter import ConversionFailed
from .domain import UnreadablePdf, page_count, pdf_blob_id, pdf_filename

log = get_logger(__name__)


async def render_requested(event: RenderRequested, ctx: RenderContext) -> None:
    """One answer per chunk, with one result per document: a PDF and its pages, or why there is none.

    A document LibreOffice cannot convert is a result, not a retry; LibreOffice
    itself being unavailable raises, and the bus retries the chunk.
    """
    results = [await _render(item, event, ctx) for item in event.documents]
    await ctx.bus.publish(
        DocumentsRendered.caused_by(
            event, key=str(event.chunk), mailing_id=event.mailing_id, chunk=event.chunk, results=results
        )
    )


async def _render(item: RenderItem, event: RenderRequested, ctx: RenderContext) -> RenderResult:
    blobs = ctx.storage.blobs
    blob_id = pdf_blob_id(item.document_id)
    if await blobs.exists(blob_id):
        stored = await blobs.info(blob_id)
        return RenderResult(document_id=item.document_id, pdf_blob_id=blob_id, page_count=stored["metadata"]["pages"])
    try:
        docx_info = await blobs.info(item.docx_blob_id)
        docx = await blobs.get(item.docx_blob_id)
    except BlobNotFound:
        return RenderResult(document_id=item.document_id, error=f"DOCX {item.docx_blob_id} not found")
    try:
        pdf = await ctx.converter.convert(docx)
        pages = await asyncio.to_thread(page_count, pdf)
    except (ConversionFailed, UnreadablePdf) as exc:
        log.warning("conversion failed", document_id=item.document_id, error=str(exc))
        return RenderResult(document_id=item.document_id, error=str(exc))
    await blobs.put(
        pdf,
        pdf_filename(docx_info["filename"]),
        "application/pdf",
        blob_id=blob_id,
        tenant_id=event.tenant_id,
        mailing_id=event.mailing_id,
        document_id=item.document_id,
        pages=pages,
    )
    return RenderResult(document_id=item.document_id, pdf_blob_id=blob_id, page_count=pages)
