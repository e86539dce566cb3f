"""The print file of a mailing: every document one after the other, in parts of at most N pages.

Parts are built one at a time, so memory holds one part, not the mailing.
Their blob ids are fixed by (mailing, part number): building again replaces.
"""

import asyncio
import io
from typing import Any

from docx import Document
from docxcompose.composer import Composer
from publipost_pdf import join_pdfs
from publipost_storage import BlobNotFound, Storage, derived_blob_id

from .domain import DocumentStatus, PartSplitter
from .repository import DocumentRepository

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def combine_docx(docxs: list[bytes]) -> bytes:
    """The DOCX documents one after the other, each starting on a new page."""
    composer = Composer(Document(io.BytesIO(docxs[0])))
    for docx in docxs[1:]:
        composer.doc.add_page_break()
        composer.append(Document(io.BytesIO(docx)))
    out = io.BytesIO()
    composer.save(out)
    return out.getvalue()


async def build_parts(
    storage: Storage, documents: DocumentRepository, mailing: dict[str, Any], page_limit: int
) -> list[dict[str, Any]]:
    """Store the parts of the mailing's print file; returns what each holds.

    A DOCX has no page count until it is laid out, so a DOCX part holds at most
    `page_limit` documents.
    """
    pdf = mailing["output"] == "pdf"
    splitter: PartSplitter[str] = PartSplitter(page_limit)
    parts: list[dict[str, Any]] = []
    async for document in documents.in_order(mailing["_id"], status=DocumentStatus.CONVERTED):
        blob_id, pages = (document["pdf_blob_id"], document["page_count"]) if pdf else (document["docx_blob_id"], 1)
        if (part := splitter.add(blob_id, pages)) is not None:
            parts.append(await _store_part(storage, mailing, len(parts) + 1, part))
    if (part := splitter.finish()) is not None:
        parts.append(await _store_part(storage, mailing, len(parts) + 1, part))
    return parts


async def _store_part(storage: Storage, mailing: dict[str, Any], number: int, blob_ids: list[str]) -> dict[str, Any]:
    found = await storage.blobs.get_many(blob_ids, tenant_id=mailing["tenant_id"])
    if missing := [blob_id for blob_id in blob_ids if blob_id not in found]:
        raise BlobNotFound(missing[0])
    contents = [found[blob_id] for blob_id in blob_ids]
    pdf = mailing["output"] == "pdf"
    if pdf:
        data, pages = await asyncio.to_thread(join_pdfs, contents)
    else:
        data, pages = await asyncio.to_thread(combine_docx, contents), len(contents)
    blob_id = await storage.blobs.put(
        data,
        f"{mailing['name']} part {number}.{'pdf' if pdf else 'docx'}",
        PDF if pdf else DOCX,
        blob_id=derived_blob_id("print-file", mailing["_id"], str(number)),
        tenant_id=mailing["tenant_id"],
        mailing_id=mailing["_id"],
    )
    return {"number": number, "blob_id": blob_id, "documents": len(blob_ids), "pages": pages}


async def delete_parts(storage: Storage, parts: list[dict[str, Any]]) -> None:
    await storage.blobs.delete_many([part["blob_id"] for part in parts])
