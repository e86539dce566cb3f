"""pdf_split.py cuts LibreOffice's PDF object by object; pypdf (PUBLIPOST_PDF_SPLITTER=pypdf) must cut it into
the same documents: the same page counts and the same text on every page."""


import pytest
from publipost_render_pdf.pdf_split import SPLITTERS

from tests.support import libreoffice_like_pdf, pypdf_made_pdf
from tests.support import read_strictly as read

PDFS = {
    "libreoffice's layout": (
        libreoffice_like_pdf(
            [f"Letter {n} page {p}" for n in range(4) for p in range(1 + n % 2)], {0: 0, 1: 1, 2: 3, 3: 4}
        ),
        4,
    ),
    "a link between documents": (libreoffice_like_pdf(["Letter one", "Letter two"], {0: 0, 1: 1}, link=(0, 1)), 2),
    "pypdf's layout": (pypdf_made_pdf(6, {0: 0, 1: 2, 2: 5}), 3),
}


def _seen(parts: list[tuple[bytes, int]]) -> list[tuple[int, list[str]]]:
    return [(pages, [page.extract_text() for page in read(pdf).pages]) for pdf, pages in parts]


@pytest.mark.parametrize("case", PDFS)
def test_the_object_splitter_and_pypdf_cut_the_same_documents(case):
    pdf, documents = PDFS[case]

    objects, library = _seen(SPLITTERS["objects"](pdf, documents)), _seen(SPLITTERS["pypdf"](pdf, documents))

    assert objects == library
    assert [pages for pages, texts in objects] == [len(texts) for _, texts in objects]
