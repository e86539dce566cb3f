"""The documents of a settled mailing as one NDJSON file in GridFS, a DocumentView a line in record order.

Dispatch reads it to send a mailing (publipost_contracts.reads.MailingView.documents_file_id) instead of
paging merge's HTTP API. It is written with the mailing's counts and print file, when the mailing settles
and when a dispatch regroups documents into a sent and a not-sent mailing; its id is fixed by the mailing,
so writing it again replaces it.
"""

from collections.abc import AsyncIterator
from typing import Any

from publipost_contracts.reads import DocumentView
from publipost_storage import Storage, derived_blob_id

from .repository import DocumentRepository

NDJSON = "application/x-ndjson"


def document_view(doc: dict[str, Any]) -> DocumentView:
    return DocumentView(id=doc["_id"], **{k: doc.get(k) for k in DocumentView.model_fields if k != "id"})


async def write_documents_file(storage: Storage, documents: DocumentRepository, mailing: dict[str, Any]) -> str:
    async def lines() -> AsyncIterator[bytes]:
        async for doc in documents.in_order(mailing["_id"]):
            yield document_view(doc).model_dump_json().encode() + b"\n"

    return await storage.blobs.put_stream(
        lines(),
        f"{mailing['_id']}-documents.ndjson",
        NDJSON,
        blob_id=derived_blob_id("mailing-documents", mailing["_id"]),
        tenant_id=mailing["tenant_id"],
        mailing_id=mailing["_id"],
    )

