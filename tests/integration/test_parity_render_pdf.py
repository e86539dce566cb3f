"""A run through LibreOffice, combined and cut by the hand-written code or by the libraries
(PUBLIPOST_DOCX_COMBINER=docxcompose, PUBLIPOST_PDF_SPLITTER=pypdf): each recipient gets the same pages
with the same text, whichever pair did it, and as many pages as their letter has alone."""

import io

from publipost_merge.rendering import render_docx
from publipost_render_pdf.combine import COMBINERS
from publipost_render_pdf.domain import page_count
from publipost_render_pdf.pdf_split import SPLITTERS
from pypdf import PdfReader

from tests.integration.test_render_pdf_service import numbered_template
from tests.support import sample_record


def _pages(parts: list[tuple[bytes, int]]) -> list[list[str]]:
    texts = [[page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages] for pdf, _ in parts]
    assert [pages for _, pages in parts] == [len(pages) for pages in texts]
    return texts


async def test_the_hand_written_pair_and_the_libraries_give_each_recipient_the_same_pages(libreoffice):
    template = numbered_template()  # "page N" in the footer: numbering must restart per letter either way
    long = {"contract": " ".join(f"clause{i}" for i in range(1500))}
    documents = [render_docx(template, sample_record(n, **(long if n == 2 else {}))) for n in range(5)]
    alone = [page_count(await libreoffice.convert(docx)) for docx in documents]

    seen = {}
    for combiner, combine in COMBINERS.items():
        pdf = await libreoffice.convert(combine(documents))
        for splitter, split in SPLITTERS.items():
            seen[combiner, splitter] = _pages(split(pdf, len(documents)))

    reference = seen["publipost", "objects"]
    assert {pair: pages for pair, pages in seen.items() if pages != reference} == {}
    assert [len(pages) for pages in reference] == alone and alone[2] >= 3
    for n, pages in enumerate(reference):
        assert all(f"Document INV-{n:04d} · page {number}" in text for number, text in enumerate(pages, start=1))
