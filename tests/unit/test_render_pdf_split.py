"""A combined PDF cut back per document: LibreOffice's plain layout copied object by object, anything
else through pypdf, both at the pages each document's marker points to."""

import io
import warnings

import pytest
from publipost_render_pdf import pdf_split
from publipost_render_pdf.combine import marker
from publipost_render_pdf.domain import PageMapMismatch, UnreadablePdf
from publipost_render_pdf.pdf_split import split_pdf_by_destinations
from pypdf import PdfReader, PdfWriter


def _pdf_with_destinations(pages: int, starts: dict[int, int]) -> bytes:
    """Made by pypdf: destinations in a name tree, so not LibreOffice's plain layout."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    for document, page in starts.items():
        writer.add_named_destination(marker(document), page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def libreoffice_like_pdf(texts: list[str], starts: dict[int, int], link: tuple[int, int] | None = None) -> bytes:
    """A PDF laid out as LibreOffice writes one: a cross-reference table, one flat page tree holding the
    resources, a font whose stream length is an object of its own, destinations in the catalog's /Dests.
    `link` (page, target page) puts a link annotation on a page that points at another page."""
    objects: dict[int, bytes] = {}
    page_numbers = [10 + 3 * n for n in range(len(texts))]
    font_program = b"not really a font program, (with a bracket) and 7 0 R inside"
    objects[2] = b"<</Length 3 0 R>>\nstream\n" + font_program + b"\nendstream"
    objects[3] = str(len(font_program)).encode()
    objects[4] = b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica/Encoding/WinAnsiEncoding>>"
    objects[5] = b"<</Font<</F1 4 0 R>>/ProcSet[/PDF/Text]/Extra 2 0 R>>"
    for n, (page, text) in enumerate(zip(page_numbers, texts, strict=True)):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        annotations = ""
        if link and link[0] == n:
            objects[page + 2] = (
                f"<</Type/Annot/Subtype/Link/Rect[0 0 10 10]/Dest[{page_numbers[link[1]]} 0 R/XYZ 0 0 0]>>".encode()
            )
            annotations = f"/Annots[{page + 2} 0 R]"
        objects[page] = f"<</Type/Page/Parent 1 0 R/Contents {page + 1} 0 R{annotations}>>".encode()
        objects[page + 1] = b"<</Length %d>>\nstream\n" % len(content) + content + b"\nendstream"
    kids = " ".join(f"{page} 0 R" for page in page_numbers)
    objects[1] = (
        f"<</Type/Pages\n/Resources 5 0 R\n/MediaBox[ 0 0 612 792 ]\n/Kids[ {kids} ]\n/Count {len(texts)}>>".encode()
    )
    dests = "".join(f"/{marker(d)}[{page_numbers[p]} 0 R/XYZ 90 720 0]\n" for d, p in starts.items())
    objects[6] = f"<<{dests}>>".encode()
    objects[7] = b"<</Type/Catalog/Pages 1 0 R\n/Dests 6 0 R\n/OpenAction[10 0 R /XYZ null null 0]>>"
    objects[8] = b"<</Creator<FEFF005700720069007400650072>/Producer(LibreOffice \\(test\\))/Title(Letter 1)>>"
    out = io.BytesIO()
    out.write(b"%PDF-1.6\n%\xe2\xe3\xcf\xd3\n")
    size = max(objects) + 1
    offsets = {}
    for number in sorted(objects):
        offsets[number] = out.tell()
        out.write(b"%d 0 obj\n%s\nendobj\n\n" % (number, objects[number]))
    xref = out.tell()
    out.write(b"xref\n0 %d\n" % size)
    for number in range(size):
        out.write(b"%010d 00000 n \n" % offsets[number] if number in offsets else b"0000000000 65535 f \n")
    out.write(b"trailer\n<</Size %d/Root 7 0 R\n/Info 8 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (size, xref))
    return out.getvalue()


def read(pdf: bytes) -> PdfReader:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # anything pypdf has to repair fails the test
        reader = PdfReader(io.BytesIO(pdf), strict=True)
        for number in range(1, reader.trailer["/Size"]):
            reader.get_object(number)
    return reader


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
    parts = split_pdf_by_destinations(_pdf_with_destinations(5, {0: 0, 1: 1, 2: 4}), documents=3)

    assert [pages for _, pages in parts] == [1, 3, 1]
    assert [len(PdfReader(io.BytesIO(pdf)).pages) for pdf, _ in parts] == [1, 3, 1]


def test_a_missing_marker_or_an_unreadable_pdf_splits_nothing():
    with pytest.raises(PageMapMismatch):
        split_pdf_by_destinations(_pdf_with_destinations(3, {0: 0, 2: 2}), documents=3)
    with pytest.raises(PageMapMismatch):
        split_pdf_by_destinations(libreoffice_like_pdf(["a", "b", "c"], {0: 0, 2: 2}), documents=3)
    with pytest.raises(UnreadablePdf):
        split_pdf_by_destinations(b"%PDF-1.4 garbage", documents=1)
