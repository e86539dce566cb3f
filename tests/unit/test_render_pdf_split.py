"""A combined PDF cut back per document: LibreOffice's plain layout copied object by object, anything
else through pypdf, both at the pages each document's marker points to."""

import io

import pytest
from publipost_render_pdf import pdf_split
from publipost_render_pdf.domain import PageMapMismatch, UnreadablePdf
from publipost_render_pdf.pdf_split import split_pdf_by_destinations
from pypdf import PdfReader

from tests.support import libreoffice_like_pdf, pypdf_made_pdf
from tests.support import read_strictly as read


def test_libreoffice_s_pdf_is_cut_object_by_object_without_pypdf(monkeypatch):
    pdf = libreoffice_like_pdf(["Letter one", "Letter two p1", "Letter two p2", "Letter three"], {0: 0, 1: 1, 2: 3})

    def no_pypdf(*_):
        raise AssertionError("went through pypdf")

    monkeypatch.setattr(pdf_split, "_split_with_pypdf", no_pypdf)
    parts = split_pdf_by_destinations(pdf, documents=3)

    assert [pages for _, pages in parts] == [1, 2, 1]
    texts = [[page.extract_text() for page in read(part).pages] for part, _ in parts]
    assert texts == [["Letter one"], ["Letter two p1", "Letter two p2"], ["Letter three"]]
    second = read(parts[1][0])
    assert [page.mediabox[2:] for page in second.pages] == [[612, 792], [612, 792]]  # from the page tree
    assert second.metadata == {"/Creator": "Writer", "/Producer": "LibreOffice (test)"}  # not the title
    font = second.pages[0]["/Resources"]["/Extra"].get_object()
    assert font.get_data() == b"not really a font program, (with a bracket) and 7 0 R inside"


def test_a_page_linking_to_another_document_s_page_is_cut_by_pypdf_instead():
    pdf = libreoffice_like_pdf(["Letter one", "Letter two"], {0: 0, 1: 1}, link=(0, 1))

    parts = split_pdf_by_destinations(pdf, documents=2)

    assert [[page.extract_text() for page in read(part).pages] for part, _ in parts] == [["Letter one"], ["Letter two"]]


def test_the_pdf_is_cut_where_each_document_s_marker_points():
    parts = split_pdf_by_destinations(pypdf_made_pdf(5, {0: 0, 1: 1, 2: 4}), documents=3)

    assert [pages for _, pages in parts] == [1, 3, 1]
    assert [len(PdfReader(io.BytesIO(pdf)).pages) for pdf, _ in parts] == [1, 3, 1]


def test_a_missing_marker_or_an_unreadable_pdf_splits_nothing():
    with pytest.raises(PageMapMismatch):
        split_pdf_by_destinations(pypdf_made_pdf(3, {0: 0, 2: 2}), documents=3)
    with pytest.raises(PageMapMismatch):
        split_pdf_by_destinations(libreoffice_like_pdf(["a", "b", "c"], {0: 0, 2: 2}), documents=3)
    with pytest.raises(UnreadablePdf):
        split_pdf_by_destinations(b"%PDF-1.4 garbage", documents=1)
