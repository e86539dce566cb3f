"""pdf_split.py cuts LibreOffice's PDF object by object; pypdf (PUBLIPOST_PDF_SPLITTER=pypdf) must cut it into
the same documents: the same page counts and the same text on every page."""

import io

import pytest
from publipost_render_pdf.combine import marker
from publipost_render_pdf.pdf_split import SPLITTERS
from pypdf import PdfWriter

from tests.support import libreoffice_like_pdf
from tests.support import read_strictly as read


def _pdf_by_pypdf(pages: int, starts: dict[int, int]) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    for document, page in starts.items():
        writer.add_named_destination(marker(document), page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


PDFS = {
    "libreoffice's layout": (
        libreoffice_like_pdf(
            [f"Letter {n} page {p}" for n in range(4) for p in range(1 + n % 2)], {0: 0, 1: 1, 2: 3, 3: 4}
        ),
        4,
    ),
    "a link between documents": (libreoffice_like_pdf(["Letter one", "Letter two"], {0: 0, 1: 1}, link=(0, 1)), 2),
    "pypdf's layout": (_pdf_by_pypdf(6, {0: 0, 1: 2, 2: 5}), 3),
}


def _seen(parts: list[tuple[bytes, int]]) -> list[tuple[int, list[str]]]:
    return [(pages, [page.extract_text() for page in read(pdf).pages]) for pdf, pages in parts]


@pytest.mark.parametrize("case", PDFS)
def test_the_object_splitter_and_pypdf_cut_the_same_documents(case):
    pdf, documents = PDFS[case]

    objects, library = _seen(SPLITTERS["objects"](pdf, documents)), _seen(SPLITTERS["pypdf"](pdf, documents))

    assert objects == library
    assert [pages for pages, texts in objects] == [len(texts) for _, texts in objects]
