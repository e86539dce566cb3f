"""What a dispatch would do, without sending: how many documents go, which cannot and why (no PDF, a text its
record cannot fill, no address), how much."""

import asyncio
from dataclasses import dataclass, field

from publipost_contracts.reads import DocumentView, MailingView
from publipost_storage import BlobNotFound

from .context import DispatchContext
from .documents import chosen_documents
from .domain import BadTemplate, DocumentFacts, EmailText, UnknownVariable, UnsafeHeader

# Base64 makes 4 bytes of 3, and each e-mail carries its headers and text besides the PDF.
BASE64_GROWTH = 4 / 3
HEADERS_AND_TEXT = 2_000
WORKERS = 16


@dataclass
class Unsendable:
    document_id: str
    document_number: str
    reason: str


@dataclass
class Preview:
    documents: int = 0
    will_send: int = 0
    unsendable: list[Unsendable] = field(default_factory=list)
    attachments_bytes: int = 0
    estimated_bytes: int = 0


@dataclass(frozen=True)
class Asked:
    """What the dispatch would send: its text, the documents' type, the fixed recipients if any."""

    text: EmailText
    document_type: str | None
    fixed_to: list[str]
    copies_per_document: int
    correspondence_type: str | None = None
    document_ids: list[str] | None = None  # only these documents of the mailing


async def preview(
    ctx: DispatchContext, tenant_id: str, correlation_id: str, mailing: MailingView, asked: Asked
) -> Preview:
    """Each document's text is filled and its address resolved as a send would, by a few workers at a
    time, so a large mailing is never held whole in memory."""
    result = Preview()
    queue: asyncio.Queue[DocumentView | None] = asyncio.Queue(maxsize=64)

    async def worker() -> None:
        while (document := await queue.get()) is not None:
            await look(document)

    async def look(document: DocumentView) -> None:
        if document.pdf_blob_id is None:
            result.unsendable.append(_unsendable(document, f"no PDF ({document.error or document.status})"))
            return
        try:
            size = (await ctx.storage.blobs.info(document.pdf_blob_id))["length"]
        except BlobNotFound:
            result.unsendable.append(_unsendable(document, "PDF missing"))
            return
        try:
            asked.text.render(DocumentFacts.of(document, mailing, asked.document_type).variables())
        except (UnsafeHeader, UnknownVariable, BadTemplate) as exc:
            result.unsendable.append(_unsendable(document, str(exc)))
            return
        if not asked.fixed_to:
            resolved = await ctx.resolver.resolve(
                tenant_id,
                correlation_id,
                customer_number=document.customer_number,
                record_email=document.email,
                correspondence_type=asked.correspondence_type,
                prefer_directory=document.last_failure is not None and document.last_failure.kind == "address",
                document_type=asked.document_type,
            )
            if resolved.email is None:
                result.unsendable.append(_unsendable(document, f"no address: {resolved.reason}"))
                return
        result.will_send += 1
        result.attachments_bytes += size
        result.estimated_bytes += asked.copies_per_document * int(size * BASE64_GROWTH + HEADERS_AND_TEXT)

    workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    try:
        async for document in chosen_documents(ctx.storage.blobs, tenant_id, mailing, asked.document_ids):
            result.documents += 1
            await queue.put(document)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    result.unsendable.sort(key=lambda u: u.document_number)
    return result


def _unsendable(document: DocumentView, reason: str) -> Unsendable:
    return Unsendable(document.id, document.document_number, reason)
