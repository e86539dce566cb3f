"""fast_rendering.py renders each record from a template compiled once; plain docxtpl
(PUBLIPOST_RENDERER=docxtpl) must give the same document: the same paragraphs in the body, tables,
headers and footers, and the same core properties."""

import io
from pathlib import Path

import pytest
from docx import Document
from publipost_merge.rendering import render_docx

from tests.support import sample_record

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"
RECORDS = {
    "plain": sample_record(1),
    "escaped and multi-line": sample_record(2, name="Dupont & Fils <SARL>", address="1 rue de la Paix\n\tBât. B"),
    "accents and numbers": sample_record(3, name="Éloïse Ñúñez", premium=1234.5, tax=0, city="Besançon"),
}


def _seen(docx: bytes) -> dict[str, object]:
    document = Document(io.BytesIO(docx))
    sections = document.sections
    return {
        "body": [paragraph.text for paragraph in document.paragraphs],
        "tables": [[cell.text for row in table.rows for cell in row.cells] for table in document.tables],
        "headers": [[p.text for p in section.header.paragraphs] for section in sections],
        "footers": [[p.text for p in section.footer.paragraphs] for section in sections],
        "title": document.core_properties.title,
    }


@pytest.mark.parametrize("case", RECORDS)
def test_the_compiled_template_and_docxtpl_render_the_same_document(case):
    template = SAMPLE.read_bytes()

    compiled = render_docx(template, RECORDS[case])
    library = render_docx(template, RECORDS[case], compiled=False)

    assert _seen(compiled) == _seen(library)
    assert RECORDS[case]["name"].split("\n")[0] in " ".join(_seen(compiled)["body"])
