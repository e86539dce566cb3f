"""A combined chunk's PDF cut back into one PDF per document, at the pages its markers point to.

LibreOffice's plain layout is cut object by object (publipost_pdf: pypdf's page-by-page writer costs
more than a millisecond per document, on the core LibreOffice's next run needs); anything else goes
through pypdf. PUBLIPOST_PDF_SPLITTER=pypdf sends every PDF through pypdf (docs/library-parity.md).
"""

import io
import re
from collections.abc import Callable

from publipost_pdf import NotPlain, PdfAssembler, PlainPdf
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError

from .combine import MARKER_PREFIX, marker
from .domain import PageMapMismatch, UnreadablePdf, page_map

KEPT_METADATA = ("/Producer", "/Creator", "/CreationDate", "/ModDate")


def split_pdf_by_destinations(pdf: bytes, documents: int) -> list[tuple[bytes, int]]:
    """(PDF, page count) of each of the `documents` combined in `pdf`, in order.

    Each document's start page is the page of its marker's named destination;
    it ends where the next one starts (see domain.page_map for what is refused).
    """
    try:
        return _split_plain(PlainPdf(pdf), documents)
    except PageMapMismatch:
        raise
    except (NotPlain, ValueError, KeyError, IndexError):  # laid out otherwise: pypdf reads it
        return _split_with_pypdf(pdf, documents)


def _split_with_pypdf(pdf: bytes, documents: int) -> list[tuple[bytes, int]]:
    try:
        reader = PdfReader(io.BytesIO(pdf))
        destinations = {name.lstrip("/"): dest for name, dest in reader.named_destinations.items()}
        starts = [
            reader.get_destination_page_number(destinations[marker(i)]) if marker(i) in destinations else None
            for i in range(documents)
        ]
        parts = []
        for pages in page_map(starts, len(reader.pages)):
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


Splitter = Callable[[bytes, int], list[tuple[bytes, int]]]
# By PUBLIPOST_PDF_SPLITTER: "pypdf" reads and writes every PDF through pypdf's page objects.
SPLITTERS: dict[str, Splitter] = {"objects": split_pdf_by_destinations, "pypdf": _split_with_pypdf}


def _split_plain(source: PlainPdf, documents: int) -> list[tuple[bytes, int]]:
    index = {number: position for position, number in enumerate(source.pages)}
    starts = _destinations(source)
    ranges = page_map([index.get(starts.get(marker(i), -1)) for i in range(documents)], len(source.pages))
    header = source.pdf[: source.pdf.find(b"\n")].rstrip()
    metadata = source.metadata()
    parts = []
    for document in ranges:
        assembler = PdfAssembler(header)
        assembler.add(source, [source.pages[n] for n in document])
        parts.append((assembler.finish(metadata), len(document)))
    return parts


def _destinations(source: PlainPdf) -> dict[str, int]:
    """The page each marker's named destination points to, from the catalog's /Dests."""
    found = re.search(rb"/Dests\s+(\d+)\s+\d+\s+R", source.catalog.text)
    if found is None:
        raise NotPlain("named destinations elsewhere than in /Dests")
    pattern = rb"/(" + MARKER_PREFIX.encode() + rb"\d+)\s*\[\s*(\d+)\s+\d+\s+R"
    names = source.object(int(found.group(1))).text
    return {name.decode(): int(page) for name, page in re.findall(pattern, names)}
