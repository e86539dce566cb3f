"""The print file of a mailing: every document one after the other, in parts of at most N pages.

When the mailing settles only the parts are planned, from the documents' stored page counts; a part's
file is built at its first download and stored under a blob id fixed by (mailing, part number), so later
downloads read it and concurrent first downloads write the same file. A part is built alone, so memory
holds one part, not the mailing.
"""

import asyncio
import io
from dataclasses import dataclass

from docx import Document as DocxDocument
from docxcompose.composer import Composer
from publipost_logging import get_logger
from publipost_pdf import join_pdfs
from publipost_storage import BlobNotFound, Storage
from pymongo.errors import BulkWriteError

from .domain import DocumentStatus, Mailing, MailingConflict, PrintFilePlan, PrintPart
from .repository import DocumentRepository

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
log = get_logger(__name__)


def combine_docx(docxs: list[bytes]) -> bytes:
    """The DOCX documents one after the other, each starting on a new page."""
    composer = Composer(DocxDocument(io.BytesIO(docxs[0])))
    for docx in docxs[1:]:
        composer.doc.add_page_break()
        composer.append(DocxDocument(io.BytesIO(docx)))
    out = io.BytesIO()
    composer.save(out)
    return out.getvalue()


async def plan_parts(documents: DocumentRepository, mailing: Mailing, page_limit: int) -> list[PrintPart]:
    """The parts of the mailing's print file, from its converted documents' page counts (no file is read):
    render-pdf's, from the PDF or, for a DOCX mailing, from laying the DOCX out."""
    plan = PrintFilePlan(mailing.id, page_limit)
    async for document in documents.page_counts(mailing.id):
        plan.add(document.index, document.page_count)
    return plan.finish()


@dataclass(frozen=True)
class PartFile:
    data: bytes
    filename: str
    content_type: str


async def build_part(storage: Storage, documents: DocumentRepository, mailing: Mailing, part: PrintPart) -> PartFile:
    """Join the part's documents and store the result under the part's blob id."""
    assert part.first_index is not None
    held = [
        document
        async for document in documents.in_order(
            mailing.id, after=part.first_index - 1, limit=part.documents, status=DocumentStatus.CONVERTED
        )
    ]
    if len(held) != part.documents or held[-1].index != part.last_index:
        raise MailingConflict(f"the documents of part {part.number} of mailing {mailing.id!r} changed; read it again")
    pdf = mailing.output == "pdf"
    blob_ids = [(d.pdf_blob_id if pdf else d.docx_blob_id) or "" for d in held]
    found = await storage.blobs.get_many(blob_ids, tenant_id=mailing.tenant_id)
    if missing := [blob_id for blob_id in blob_ids if blob_id not in found]:
        raise BlobNotFound(missing[0])
    contents = [found[blob_id] for blob_id in blob_ids]
    if pdf:
        data, _ = await asyncio.to_thread(join_pdfs, contents)
    else:
        data = await asyncio.to_thread(combine_docx, contents)
    built = PartFile(data, f"{mailing.name} part {part.number}.{'pdf' if pdf else 'docx'}", PDF if pdf else DOCX)
    try:
        await storage.blobs.put(
            built.data,
            built.filename,
            built.content_type,
            blob_id=part.blob_id,
            tenant_id=mailing.tenant_id,
            mailing_id=mailing.id,
        )
    except BulkWriteError:
        # A concurrent first download stored the same part under the same id and won: this one answers with
        # the file it built all the same.
        log.info("print file part stored by a concurrent download", mailing_id=mailing.id, part=part.number)
    return built


async def delete_parts(storage: Storage, parts: list[PrintPart]) -> None:
    """Only parts that were downloaded have a file; deleting one never built deletes nothing."""
    await storage.blobs.delete_many([part.blob_id for part in parts])
