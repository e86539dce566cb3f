"""A mailing's PDFs joined into its print file: LibreOffice's plain PDFs object by object, any other
through pypdf; either way every page, in order, with what it inherits from its own page tree."""

import io

from publipost_pdf import plain
from publipost_pdf.plain import join_pdfs
from pypdf import PdfReader, PdfWriter

from tests.support import libreoffice_like_pdf, read_strictly


def blank(width: int) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=width, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_plain_pdfs_are_joined_object_by_object_each_page_keeping_its_tree_s_attributes(monkeypatch):
    first = libreoffice_like_pdf(["Letter one"], {0: 0})
    second = libreoffice_like_pdf(["Letter two p1", "Letter two p2"], {0: 0})
    monkeypatch.setattr(plain, "PdfWriter", None)  # pypdf's writer is never reached

    joined, pages = join_pdfs([first, second, first])

    reader = read_strictly(joined)
    assert pages == 4 == len(reader.pages)
    assert [page.extract_text() for page in reader.pages] == ["Letter one", "Letter two p1", "Letter two p2", "Letter one"]
    assert all(page.mediabox[2:] == [612, 792] for page in reader.pages)  # held by each source's page tree
    font = reader.pages[3]["/Resources"]["/Extra"].get_object()
    assert font.get_data() == b"not really a font program, (with a bracket) and 7 0 R inside"
    assert reader.metadata == {"/Creator": "Writer", "/Producer": "LibreOffice (test)"}  # not the first title


def test_a_pdf_not_laid_out_by_libreoffice_makes_the_join_go_through_pypdf():
    joined, pages = join_pdfs([libreoffice_like_pdf(["Letter one"], {0: 0}), blank(300)])

    reader = PdfReader(io.BytesIO(joined))
    assert pages == 2
    assert reader.pages[0].extract_text() == "Letter one"
    assert reader.pages[1].mediabox[2] == 300
