"""A mailing's documents, read from its documents file in GridFS (merge writes it, a DocumentView a line, when
the mailing settles): a dispatch of 100,000 documents reads them as a stream, not by paging merge's API."""

from collections.abc import AsyncIterator

from publipost_contracts.reads import DocumentView, MailingView
from publipost_refusals import Conflict
from publipost_storage import BlobStore


async def documents_of(blobs: BlobStore, tenant_id: str, mailing: MailingView) -> AsyncIterator[DocumentView]:
    """Every document of the mailing, in record order; only a file of the tenant's is read."""
    if mailing.documents_file_id is None:
        raise Conflict(f"mailing {mailing.id!r} is {mailing.status}: its documents are not listed yet")
    async for line in blobs.lines(mailing.documents_file_id, tenant_id=tenant_id):
        yield DocumentView.model_validate_json(line)


async def document_of(blobs: BlobStore, tenant_id: str, mailing: MailingView, document_id: str) -> DocumentView | None:
    async for document in documents_of(blobs, tenant_id, mailing):
        if document.id == document_id:
            return document
    return None
