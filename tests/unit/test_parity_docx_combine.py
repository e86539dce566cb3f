"""combine.py builds a run's DOCX part by part; docxcompose with python-docx (PUBLIPOST_DOCX_COMBINER=docxcompose)
must give the same document: each letter's paragraphs in order, in a section of its own with its own header
and footer, opened by its marker. (The PDFs both lay out to: tests/integration/test_parity_render_pdf.py.)"""

import io
from pathlib import Path

import pytest
from docx import Document
from docx.oxml.ns import qn
from publipost_merge.rendering import render_docx
from publipost_render_pdf.combine import COMBINERS, NotCombinable, marker

from tests.support import sample_record

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"


def letters(count: int) -> list[bytes]:
    template = SAMPLE.read_bytes()
    return [render_docx(template, sample_record(n, contract=f"CT-{n} " * (1 + 300 * (n == 2)))) for n in range(count)]


def _seen(docx: bytes) -> dict[str, object]:
    document = Document(io.BytesIO(docx))
    body = document.element.body
    return {
        "paragraphs": [paragraph.text for paragraph in document.paragraphs if paragraph.text],
        "markers": [name for b in body.iter(qn("w:bookmarkStart")) if (name := b.get(qn("w:name"))).startswith("Pub")],
        "headers": [[p.text for p in section.header.paragraphs] for section in document.sections],
        "footers": [[p.text for p in section.footer.paragraphs] for section in document.sections],
        "new pages": [section.start_type for section in document.sections][1:],
    }


@pytest.mark.parametrize("count", [1, 5])
def test_the_hand_written_combiner_and_docxcompose_combine_the_same_document(count):
    documents = letters(count)

    own, library = _seen(COMBINERS["publipost"](documents)), _seen(COMBINERS["docxcompose"](documents))

    assert own == library
    assert own["markers"] == [marker(n) for n in range(count)]
    assert [footer[0] for footer in own["footers"]] == [
        f"Customer C{n:04d} · Document INV-{n:04d}" for n in range(count)
    ]


def test_docxcompose_refuses_what_it_cannot_combine():
    with pytest.raises(NotCombinable):
        COMBINERS["docxcompose"]([])
    with pytest.raises(NotCombinable):
        COMBINERS["docxcompose"]([letters(1)[0], b"not a zip"])
