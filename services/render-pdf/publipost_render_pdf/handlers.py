"""render.requested → convert the chunk's documents, store one PDF each, answer documents.rendered."""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from publipost_bus import Components
from publipost_contracts import DocumentsRendered, RenderItem, RenderRequested, RenderResult
from publipost_einvoice import InvalidEInvoice, Profile, embed_facturx
from publipost_einvoice.blobs import cii_blob_id, facturx_blob_id
from publipost_logging import get_logger
from publipost_storage import BlobNotFound, NewBlob, belongs_to

from .batch import CombinedRuns, Converted, Prepared, convert_documents, prepare
from .context import RenderContext
from .converter import ConversionFailed
from .domain import Backend, conversion_year, pdf_blob_id, pdf_filename, queue_wait_s, quota_refusal
from .metrics import DOCUMENTS, QUEUE_WAIT_SECONDS

log = get_logger(__name__)


@dataclass(frozen=True)
class _ToConvert:
    item: RenderItem
    docx: bytes
    filename: str


async def render_requested(event: RenderRequested, ctx: RenderContext = Components) -> None:
    """Convert a chunk of DOCX documents to PDF."""
    await ctx.bus.publish(await render_chunk(event, ctx))


async def render_chunk(event: RenderRequested, ctx: RenderContext) -> DocumentsRendered:
    """One answer per chunk, with one result per document: a PDF and its pages, or why there is none.

    A document that cannot be converted, or is over the tenant's quota, is a
    result, not a retry; the backend itself being unavailable raises, and the
    bus retries the chunk (PDFs already stored are then reused).
    """
    QUEUE_WAIT_SECONDS.observe(queue_wait_s(event.occurred_at, datetime.now(UTC)))
    async with ctx.preparing:
        results, to_convert = await _load(event.tenant_id, event.documents, ctx)
        if not to_convert:
            admitted = None
        elif event.count_only:
            admitted = await _counted_only(event, to_convert, ctx)
        else:
            admitted = await _admit(event, to_convert, ctx, results)
    if admitted is not None:
        results.update(await _convert(event, admitted, ctx))
    return DocumentsRendered.caused_by(
        event,
        key=str(event.chunk),
        mailing_id=event.mailing_id,
        chunk=event.chunk,
        results=[results[item.document_id] for item in event.documents],
    )


async def _load(
    tenant_id: str, items: list[RenderItem], ctx: RenderContext
) -> tuple[dict[str, RenderResult], list[_ToConvert]]:
    """Results for documents whose PDF an earlier delivery stored, and the DOCX of the others. Only the
    request's tenant's files count: a DOCX of another tenant is not found, and its PDF is neither reused nor
    overwritten (the conversion fails as for a missing DOCX)."""
    pdf_ids = {item.document_id: pdf_blob_id(item.document_id) for item in items}
    facturx_ids = [facturx_blob_id(item.docx_blob_id) for item in items if item.facturx_level]
    # GridFS writes a file entry after its chunks: a PDF whose entry exists is whole.
    found = await ctx.blobs.infos([*pdf_ids.values(), *facturx_ids, *(item.docx_blob_id for item in items)])
    files = {blob_id: info for blob_id, info in found.items() if belongs_to(info.get("metadata"), tenant_id)}
    for item in items:
        if pdf_ids[item.document_id] in found and pdf_ids[item.document_id] not in files:
            files.pop(item.docx_blob_id, None)  # converting it would replace another tenant's PDF
    docx = await ctx.blobs.read([files[item.docx_blob_id] for item in items if item.docx_blob_id in files])
    results: dict[str, RenderResult] = {}
    to_convert: list[_ToConvert] = []
    for item in items:
        stored = files.get(pdf_ids[item.document_id])
        if item.facturx_level and facturx_blob_id(item.docx_blob_id) not in files:
            stored = None  # its Factur-X PDF is still to be made, from a fresh PDF/A-3
        if stored is not None:
            DOCUMENTS.labels("reused").inc()
            pages = stored["metadata"]["pages"]
            results[item.document_id] = RenderResult(
                document_id=item.document_id,
                pdf_blob_id=pdf_ids[item.document_id],
                page_count=pages,
                backend=stored["metadata"].get("backend"),
            )
        elif item.docx_blob_id in docx:
            to_convert.append(_ToConvert(item, docx[item.docx_blob_id], files[item.docx_blob_id]["filename"]))
        else:
            DOCUMENTS.labels("failed").inc()
            results[item.document_id] = RenderResult(
                document_id=item.document_id, error=f"DOCX {item.docx_blob_id} not found"
            )
    return results, to_convert


@dataclass(frozen=True)
class _Run:
    """Documents of the chunk going to one backend, sorted into runs."""

    documents: list[_ToConvert]
    prepared: Prepared
    runs: CombinedRuns
    backend: Backend
    charged: bool  # counted against the included quota (a failure is given back)


@dataclass(frozen=True)
class _Admitted:
    runs: list[_Run]
    year: int


async def _admit(
    event: RenderRequested, documents: list[_ToConvert], ctx: RenderContext, results: dict[str, RenderResult]
) -> _Admitted | None:
    """Count the documents against the quota and sort them into runs. Past the quota, the tenant's paid
    converter takes the rest when it has one (until the year ends: the count is per year); without one they
    are refused, each with its result."""
    tenant_id = event.tenant_id
    year = conversion_year(event.occurred_at)
    ids = [d.item.document_id for d in documents]
    tenant, already = await asyncio.gather(ctx.tenants.get(tenant_id), ctx.usage.charged(tenant_id, year, ids))
    choice = ctx.backends.choice_for(tenant)
    limit = None if choice.external else tenant.limit(ctx.settings.yearly_conversion_limit)
    counted = already | set(await ctx.usage.charge(tenant_id, year, [i for i in ids if i not in already], limit))
    admitted = [d for d in documents if d.item.document_id in counted]
    over = [d for d in documents if d.item.document_id not in counted]
    overflow = ctx.backends.overflow_for(tenant) if over else None
    if over and overflow is None:
        DOCUMENTS.labels("refused").inc(len(over))
        for refused in over:
            results[refused.item.document_id] = RenderResult(
                document_id=refused.item.document_id, error=quota_refusal(tenant_id, limit)
            )
    elif over and overflow is not None:
        DOCUMENTS.labels("overflowed").inc(len(over))
        log.info("past the included quota: the paid converter takes over", documents=len(over), limit=limit)
    groups = [(admitted, choice, True), (over if overflow else [], overflow, False)]
    runs = [
        _Run(
            group,
            await prepare([d.docx for d in group], scope=tenant_id),
            ctx.backends.runs(chosen),
            chosen.backend,
            charged,
        )
        for group, chosen, charged in groups
        if group and chosen is not None
    ]
    return _Admitted(runs, year) if runs else None


async def _counted_only(event: RenderRequested, documents: list[_ToConvert], ctx: RenderContext) -> _Admitted:
    """Page counts of a Word mailing: laid out by the tenant's converter like PDFs, but no PDF is delivered, so
    none is charged to the quota (and none refused past it)."""
    choice = ctx.backends.choice_for(await ctx.tenants.get(event.tenant_id))
    prepared = await prepare([d.docx for d in documents], scope=event.tenant_id)
    run = _Run(documents, prepared, ctx.backends.runs(choice), choice.backend, charged=False)
    return _Admitted([run], conversion_year(event.occurred_at))


async def _convert(event: RenderRequested, admitted: _Admitted, ctx: RenderContext) -> dict[str, RenderResult]:
    results: dict[str, RenderResult] = {}
    for run, converted in zip(
        admitted.runs,
        await asyncio.gather(*(convert_documents(run.prepared, run.runs) for run in admitted.runs)),
        strict=True,
    ):
        results.update(await _store(event, run, converted, admitted.year, ctx))
    return results


async def _store(
    event: RenderRequested, run: _Run, converted: list[Converted], year: int, ctx: RenderContext
) -> dict[str, RenderResult]:
    """Each PDF stored with what made it (only its page count when that is all that was asked); a failure
    gives its charge back."""
    tenant_id = event.tenant_id
    results: dict[str, RenderResult] = {}
    pdfs: list[NewBlob] = []
    failed: list[str] = []
    for document, outcome in zip(run.documents, converted, strict=True):
        document_id = document.item.document_id
        if outcome.pdf is None:
            DOCUMENTS.labels("failed").inc()
            log.warning("conversion failed", document_id=document_id, error=outcome.error, backend=run.backend)
            results[document_id] = RenderResult(document_id=document_id, error=outcome.error)
            failed.append(document_id)
            continue
        metadata = {
            "content_type": "application/pdf",
            "tenant_id": tenant_id,
            "mailing_id": event.mailing_id,
            "document_id": document_id,
            "pages": outcome.pages,
            "backend": run.backend.value,
        }
        if not event.count_only:
            pdfs.append(NewBlob(pdf_blob_id(document_id), outcome.pdf, pdf_filename(document.filename), metadata))
        results[document_id] = RenderResult(
            document_id=document_id,
            pdf_blob_id=None if event.count_only else pdf_blob_id(document_id),
            page_count=outcome.pages,
            backend=run.backend.value,
        )
    await ctx.blobs.put_many(pdfs)
    DOCUMENTS.labels("converted").inc(len(pdfs))
    if not event.count_only:
        invoices = [d for d in run.documents if d.item.facturx_level and results[d.item.document_id].pdf_blob_id]
        # Side by side, so every LibreOffice worker of the pool takes a share of the PDF/A conversions.
        errors = await asyncio.gather(*(_facturx(event, run, document, ctx) for document in invoices))
        for document, error in zip(invoices, errors, strict=True):
            if error is not None:
                results[document.item.document_id] = RenderResult(document_id=document.item.document_id, error=error)
                failed.append(document.item.document_id)
    if run.charged:
        await ctx.usage.refund(tenant_id, year, failed)
    return results


async def _facturx(event: RenderRequested, run: _Run, document: _ToConvert, ctx: RenderContext) -> str | None:
    """The document's Factur-X PDF: its DOCX converted alone to PDF/A-3 (a combined run's pages, cut out, would
    not be one), the CII XML merge stored embedded by the factur-x library, which checks it against the
    profile's XSD. The plain PDF stays what the print file uses. Returns why it could not be made."""
    item = document.item
    assert item.facturx_level is not None
    try:
        xml = await ctx.blobs.get(cii_blob_id(item.docx_blob_id), tenant_id=event.tenant_id)
        pdfa = await run.runs.converter.convert(document.docx, retry=True, pdfa=True)
        facturx = await asyncio.to_thread(embed_facturx, pdfa, xml, Profile(item.facturx_level))
    except (BlobNotFound, ConversionFailed, InvalidEInvoice) as exc:
        log.warning("Factur-X not made", document_id=item.document_id, error=str(exc))
        return f"Factur-X not made: {exc}"
    metadata = {
        "content_type": "application/pdf",
        "tenant_id": event.tenant_id,
        "mailing_id": event.mailing_id,
        "document_id": item.document_id,
        "facturx_level": item.facturx_level,
    }
    await ctx.blobs.put_many(
        [NewBlob(facturx_blob_id(item.docx_blob_id), facturx, pdf_filename(document.filename), metadata)]
    )
    return None
