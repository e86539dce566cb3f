"""A combined chunk's PDF cut back into one PDF per document, at the pages its markers point to."""

import io

from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError

from .combine import marker
from .domain import PageMapMismatch, UnreadablePdf, page_map

KEPT_METADATA = ("/Producer", "/Creator", "/CreationDate", "/ModDate")


def split_pdf_by_destinations(pdf: bytes, documents: int) -> list[tuple[bytes, int]]:
    """(PDF, page count) of each of the `documents` combined in `pdf`, in order.

    Each document's start page is the page of its marker's named destination;
    it ends where the next one starts (see domain.page_map for what is refused).
    """
    try:
        reader = PdfReader(io.BytesIO(pdf))
        destinations = {name.lstrip("/"): dest for name, dest in reader.named_destinations.items()}
        starts = [
            reader.get_destination_page_number(destinations[marker(i)]) if marker(i) in destinations else None
            for i in range(documents)
        ]
        ranges = page_map(starts, len(reader.pages))
        parts = []
        for pages in ranges:
            writer = PdfWriter()
            for number in pages:
                writer.add_page(reader.pages[number])
            if reader.metadata:  # what made the PDF, not the first document's title
                writer.add_metadata({key: value for key, value in reader.metadata.items() if key in KEPT_METADATA})
            out = io.BytesIO()
            writer.write(out)
            parts.append((out.getvalue(), len(pages)))
    except PageMapMismatch:
        raise
    except (PdfReadError, ValueError, KeyError) as exc:
        raise UnreadablePdf(f"LibreOffice produced an unreadable PDF: {exc}") from exc
    return parts
