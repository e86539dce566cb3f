"""A mailing's documents, read from its documents file in GridFS (merge writes it, a DocumentView a line, when
the mailing settles): a dispatch of 100,000 documents reads them as a stream, not by paging merge's API."""

from collections.abc import AsyncIterator

from publipost_contracts.reads import DocumentView, MailingView
from publipost_refusals import Conflict, Invalid
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


async def chosen_documents(
    blobs: BlobStore, tenant_id: str, mailing: MailingView, document_ids: list[str] | None
) -> AsyncIterator[DocumentView]:
    """The documents a dispatch sends: every one of the mailing, or only those it names."""
    wanted = set(document_ids) if document_ids is not None else None
    async for document in documents_of(blobs, tenant_id, mailing):
        if wanted is None or document.id in wanted:
            yield document


async def check_chosen(blobs: BlobStore, tenant_id: str, mailing: MailingView, document_ids: list[str]) -> None:
    """Invalid, naming the first few, when some of the documents a dispatch names are not the mailing's."""
    missing = set(document_ids)
    async for document in documents_of(blobs, tenant_id, mailing):
        missing.discard(document.id)
        if not missing:
            return
    named = ", ".join(repr(document_id) for document_id in sorted(missing)[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    raise Invalid(f"document_ids: {named}{more} not in mailing {mailing.id!r}")
