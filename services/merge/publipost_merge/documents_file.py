"""The documents of a settled mailing as one NDJSON file in GridFS, a DocumentView a line in record order.

Dispatch reads it to send a mailing (publipost_contracts.reads.MailingView.documents_file_id) instead of
paging merge's HTTP API. It is written with the mailing's counts and print file plan, when the mailing settles
and when a dispatch regroups documents into a sent and a not-sent mailing. Each writing is a new file: the
writer whose settling is stored keeps its file, the others delete theirs.
"""

from collections.abc import AsyncIterator

from publipost_contracts.reads import DocumentView, FailureView
from publipost_storage import Storage

from .domain import Document, Mailing
from .repository import DocumentRepository


def document_view(document: Document) -> DocumentView:
    return DocumentView(
        id=document.id,
        index=document.index,
        record_id=document.record_id,
        customer_number=document.customer_number,
        email=document.email,
        document_number=document.document_number,
        recipient_name=document.recipient_name,
        status=document.status,
        pdf_blob_id=document.pdf_blob_id,
        docx_blob_id=document.docx_blob_id,
        page_count=document.page_count,
        error=document.error,
        converted_by=document.converted_by,
        email_state=document.email_state,
        sent_at=document.sent_at,
        sent_to=document.sent_to,
        email_error=document.email_error,
        fields=document.fields,
        last_failure=(
            FailureView(reason=document.last_failure, kind=document.last_failure_kind)
            if document.last_failure is not None
            else None
        ),
    )


async def write_documents_file(storage: Storage, documents: DocumentRepository, mailing: Mailing) -> str:
    async def views() -> AsyncIterator[DocumentView]:
        async for document in documents.in_order(mailing.id):
            yield document_view(document)

    return await storage.blobs.put_lines(
        views(),
        f"{mailing.id}-documents.ndjson",
        tenant_id=mailing.tenant_id,
        mailing_id=mailing.id,
    )
