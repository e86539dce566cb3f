"""render.requested → convert the chunk's documents, store one PDF each, answer documents.rendered."""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from publipost_contracts import DocumentsRendered, RenderItem, RenderRequested, RenderResult
from publipost_logging import get_logger
from publipost_storage import BlobNotFound

from .batch import Converted, convert_documents
from .context import RenderContext
from .domain import conversion_year, pdf_blob_id, pdf_filename, queue_wait_s, quota_refusal
from .metrics import DOCUMENTS, QUEUE_WAIT_SECONDS
from .repository import limit_of

log = get_logger(__name__)


@dataclass(frozen=True)
class _ToConvert:
    item: RenderItem
    docx: bytes
    filename: str


async def render_requested(event: RenderRequested, ctx: RenderContext) -> None:
    await ctx.bus.publish(await render_chunk(event, ctx))


async def render_chunk(event: RenderRequested, ctx: RenderContext) -> DocumentsRendered:
    """One answer per chunk, with one result per document: a PDF and its pages, or why there is none.

    A document that cannot be converted, or is over the tenant's quota, is a
    result, not a retry; the backend itself being unavailable raises, and the
    bus retries the chunk (PDFs already stored are then reused).
    """
    QUEUE_WAIT_SECONDS.observe(queue_wait_s(event.occurred_at, datetime.now(UTC)))
    loaded = await asyncio.gather(*(_load(item, ctx) for item in event.documents))
    results = {
        item.document_id: r for item, r in zip(event.documents, loaded, strict=True) if isinstance(r, RenderResult)
    }
    to_convert = [r for r in loaded if isinstance(r, _ToConvert)]
    if to_convert:
        results.update(await _convert(event, to_convert, ctx))
    return DocumentsRendered.caused_by(
        event,
        key=str(event.chunk),
        mailing_id=event.mailing_id,
        chunk=event.chunk,
        results=[results[item.document_id] for item in event.documents],
    )


async def _load(item: RenderItem, ctx: RenderContext) -> RenderResult | _ToConvert:
    """The stored PDF of a redelivered document, or the DOCX to convert."""
    blobs = ctx.storage.blobs
    blob_id = pdf_blob_id(item.document_id)
    try:
        stored = await blobs.info(blob_id)  # GridFS writes the file entry last: one that exists is whole
        DOCUMENTS.labels("reused").inc()
        return RenderResult(document_id=item.document_id, pdf_blob_id=blob_id, page_count=stored["metadata"]["pages"])
    except BlobNotFound:
        pass
    try:
        docx_info = await blobs.info(item.docx_blob_id)
        docx = await blobs.get(item.docx_blob_id)
    except BlobNotFound:
        DOCUMENTS.labels("failed").inc()
        return RenderResult(document_id=item.document_id, error=f"DOCX {item.docx_blob_id} not found")
    return _ToConvert(item, docx, docx_info["filename"])


async def _convert(event: RenderRequested, documents: list[_ToConvert], ctx: RenderContext) -> dict[str, RenderResult]:
    tenant_id = event.tenant_id
    tenant = await ctx.tenants.get(tenant_id)
    choice = ctx.backends.choice_for(tenant)
    converter = ctx.backends.converter(choice)
    limit = None if choice.external else limit_of(tenant, ctx.settings.yearly_conversion_limit)
    year = conversion_year(event.occurred_at)
    ids = [d.item.document_id for d in documents]
    already = await ctx.usage.charged(tenant_id, year, ids)
    counted = already | set(await ctx.usage.charge(tenant_id, year, [i for i in ids if i not in already], limit))

    results: dict[str, RenderResult] = {}
    admitted = [d for d in documents if d.item.document_id in counted]
    for refused in (d for d in documents if d.item.document_id not in counted):
        DOCUMENTS.labels("refused").inc()
        results[refused.item.document_id] = RenderResult(
            document_id=refused.item.document_id, error=quota_refusal(tenant_id, limit)
        )
    if not admitted:
        return results
    converted = await convert_documents([d.docx for d in admitted], converter, ctx.settings.batch_size)
    stored = await asyncio.gather(
        *(_store(d, outcome, event, ctx) for d, outcome in zip(admitted, converted, strict=True))
    )
    results.update((result.document_id, result) for result in stored)
    await ctx.usage.refund(tenant_id, year, [r.document_id for r in stored if r.error])
    return results


async def _store(document: _ToConvert, outcome: Converted, event: RenderRequested, ctx: RenderContext) -> RenderResult:
    document_id = document.item.document_id
    if outcome.pdf is None:
        DOCUMENTS.labels("failed").inc()
        log.warning("conversion failed", document_id=document_id, error=outcome.error)
        return RenderResult(document_id=document_id, error=outcome.error)
    blob_id = await ctx.storage.blobs.put(
        outcome.pdf,
        pdf_filename(document.filename),
        "application/pdf",
        blob_id=pdf_blob_id(document_id),
        tenant_id=event.tenant_id,
        mailing_id=event.mailing_id,
        document_id=document_id,
        pages=outcome.pages,
    )
    DOCUMENTS.labels("converted").inc()
    return RenderResult(document_id=document_id, pdf_blob_id=blob_id, page_count=outcome.pages)
