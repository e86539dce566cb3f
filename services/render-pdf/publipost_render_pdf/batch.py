"""Converting a chunk: documents that share their styles go through the backend as one combined
document and are cut back by page map; anything that goes wrong there is retried one document at a
time, which finds the document at fault and lets the others through."""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from publipost_logging import get_logger

from .combine import NotCombinable, combine_docx, combine_key
from .converter import ConversionFailed, Converter
from .domain import PageMapMismatch, UnreadablePdf, batches, page_count
from .metrics import CONVERSION_FAILURES, CONVERSION_SECONDS, CONVERSIONS
from .pdf_split import split_pdf_by_destinations

log = get_logger(__name__)
_FAILURE_REASONS = {NotCombinable: "not_combinable", PageMapMismatch: "page_map", UnreadablePdf: "unreadable"}


@dataclass(frozen=True)
class Converted:
    """One document's outcome: its PDF and pages, or why there is none."""

    pdf: bytes | None = None
    pages: int = 0
    error: str | None = None


async def convert_documents(documents: Sequence[bytes], converter: Converter, max_batch: int) -> list[Converted]:
    keys = await asyncio.to_thread(lambda: [combine_key(docx) for docx in documents])
    results: list[Converted] = [Converted()] * len(documents)
    for group in batches(keys, max_batch):
        group_documents = [documents[position] for position in group]
        outcomes = await _convert_together(group_documents, converter) if len(group) > 1 else None
        if outcomes is None:
            outcomes = [await _convert_alone(docx, converter) for docx in group_documents]
        for position, outcome in zip(group, outcomes, strict=True):
            results[position] = outcome
    return results


async def _convert_together(documents: list[bytes], converter: Converter) -> list[Converted] | None:
    """The documents' PDFs from one combined conversion, or None when they must go one by one."""
    try:
        combined = await asyncio.to_thread(combine_docx, documents)
        pdf = await _timed(converter, combined, "batch", retry=False)
        parts = await asyncio.to_thread(split_pdf_by_destinations, pdf, len(documents))
    except (NotCombinable, ConversionFailed, PageMapMismatch, UnreadablePdf) as exc:
        if not isinstance(exc, ConversionFailed):  # those are counted by _timed
            CONVERSION_FAILURES.labels(converter.name, "batch", _FAILURE_REASONS[type(exc)]).inc()
        log.warning("combined conversion failed: converting one by one", documents=len(documents), error=str(exc))
        return None
    return [Converted(pdf=part, pages=pages) for part, pages in parts]


async def _convert_alone(docx: bytes, converter: Converter) -> Converted:
    try:
        pdf = await _timed(converter, docx, "single", retry=True)
        pages = await asyncio.to_thread(page_count, pdf)
    except UnreadablePdf as exc:
        CONVERSION_FAILURES.labels(converter.name, "single", "unreadable").inc()
        return Converted(error=str(exc))
    except ConversionFailed as exc:
        return Converted(error=str(exc))
    return Converted(pdf=pdf, pages=pages)


async def _timed(converter: Converter, docx: bytes, mode: str, *, retry: bool) -> bytes:
    started = time.perf_counter()
    try:
        return await converter.convert(docx, retry=retry)
    except ConversionFailed as exc:
        CONVERSION_FAILURES.labels(converter.name, mode, exc.reason).inc()
        raise
    finally:
        CONVERSIONS.labels(converter.name, mode).inc()
        CONVERSION_SECONDS.labels(converter.name, mode).observe(time.perf_counter() - started)
