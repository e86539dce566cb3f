"""What render-pdf knows about documents, without LibreOffice or a broker."""

import io
from pathlib import PurePath

from publipost_storage import derived_blob_id
from pypdf import PdfReader
from pypdf.errors import PdfReadError


class UnreadablePdf(ValueError):
    pass


def pdf_blob_id(document_id: str) -> str:
    """One PDF per document: a redelivered chunk finds it instead of converting again."""
    return derived_blob_id("pdf", document_id)


def pdf_filename(docx_filename: str) -> str:
    return f"{PurePath(docx_filename).stem}.pdf"


def page_count(pdf: bytes) -> int:
    """Pages of a converted document; a PDF pypdf cannot read is a failed conversion."""
    try:
        pages = len(PdfReader(io.BytesIO(pdf)).pages)
    except (PdfReadError, ValueError) as exc:
        raise UnreadablePdf(f"LibreOffice produced an unreadable PDF: {exc}") from exc
    if pages == 0:
        raise UnreadablePdf("LibreOffice produced a PDF with no pages")
    return pages
