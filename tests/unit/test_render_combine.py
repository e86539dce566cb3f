"""A chunk of DOCX combined into one document, and its PDF cut back per document."""

import io
import posixpath
import re
import zipfile
from pathlib import Path

import pytest
from lxml import etree
from publipost_merge.rendering import render_docx
from publipost_render_pdf.combine import NotCombinable, combine_docx, combine_key, marker

from tests.support import sample_record

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
NS = {"w": W[1:-1]}


def letter(n: int) -> bytes:
    return render_docx(SAMPLE.read_bytes(), sample_record(n))


def edited(docx: bytes, parts: dict[str, bytes]) -> bytes:
    """`docx` with some parts replaced or added."""
    source = zipfile.ZipFile(io.BytesIO(docx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            target.writestr(name, parts.pop(name, None) or source.read(name))
        for name, data in parts.items():
            target.writestr(name, data)
    return out.getvalue()


def part(docx: bytes, name: str) -> bytes:
    return zipfile.ZipFile(io.BytesIO(docx)).read(name)


def with_body(docx: bytes, inner: str) -> bytes:
    """The document with its body content (not its section properties) replaced by `inner`."""
    document = part(docx, "word/document.xml").decode()
    document = re.sub(r"<w:body>.*?(<w:sectPr)", f"<w:body>{inner}\\1", document, flags=re.DOTALL)
    return edited(docx, {"word/document.xml": document.encode()})


class Combined:
    def __init__(self, docx: bytes) -> None:
        self.docx = docx
        self.zip = zipfile.ZipFile(io.BytesIO(docx))
        self.root = etree.fromstring(self.zip.read("word/document.xml"))
        rels = etree.fromstring(self.zip.read("word/_rels/document.xml.rels"))
        self.rels = {rel.get("Id"): rel.get("Target") for rel in rels}

    def sections(self) -> list[etree._Element]:
        return self.root.findall(".//w:sectPr", NS)

    def part_of(self, section: etree._Element, reference: str) -> str:
        ref = section.find(f"w:{reference}", NS)
        return self.rels[ref.get(f"{R}id")]

    def read(self, target: str) -> bytes:
        return self.zip.read(posixpath.normpath(f"word/{target}"))

    def text(self, target: str) -> str:
        return "".join(etree.fromstring(self.read(target)).itertext())


def test_each_document_keeps_its_own_footer_in_its_own_section_and_starts_with_its_marker():
    combined = Combined(combine_docx([letter(1), letter(2), letter(3)]))

    sections = combined.sections()
    assert len(sections) == 3
    assert [s.find("w:type", NS).get(f"{W}val") for s in sections[1:]] == ["nextPage", "nextPage"]
    footers = [combined.text(combined.part_of(s, "footerReference")) for s in sections]
    assert ["INV-0001" in footers[0], "INV-0002" in footers[1], "INV-0003" in footers[2]] == [True] * 3
    names = [b.get(f"{W}name") for b in combined.root.iter(f"{W}bookmarkStart")]
    assert names == [marker(0), marker(1), marker(2)]
    body_text = "".join(combined.root.itertext())
    assert body_text.index("Client Number1") < body_text.index("Client Number2") < body_text.index("Client Number3")


def test_identical_parts_are_shared_and_different_ones_copied():
    combined = Combined(combine_docx([letter(1), letter(2)]))

    first, second = combined.sections()
    assert "Lyon" in combined.text(combined.part_of(first, "headerReference"))
    assert second.find("w:headerReference", NS) is None  # the same branch name in both: one header, inherited
    footers = {combined.part_of(s, "footerReference") for s in (first, second)}
    assert len(footers) == 2
    assert "../publipost/d1/word/footer1.xml" in footers


def test_a_section_inherits_the_previous_header_only_when_it_would_name_the_same_one():
    nantes = render_docx(SAMPLE.read_bytes(), sample_record(3, branch="Nantes"))
    combined = Combined(combine_docx([letter(1), letter(2), nantes, letter(4)]))

    sections = combined.sections()
    assert [s.find("w:headerReference", NS) is None for s in sections] == [False, True, False, False]
    assert "Nantes" in combined.text(combined.part_of(sections[2], "headerReference"))
    assert "Lyon" in combined.text(combined.part_of(sections[3], "headerReference"))  # named again after Nantes
    assert all(s.find("w:footerReference", NS) is not None for s in sections)  # each letter's own footer


def test_page_numbers_restart_at_one_only_for_documents_that_show_them():
    plain = Combined(combine_docx([letter(1), letter(2)]))
    numbered_footer = part(letter(0), "word/footer1.xml").replace(
        b"</w:p>", b'<w:fldSimple w:instr=" PAGE "><w:r><w:t>1</w:t></w:r></w:fldSimple></w:p>'
    )
    numbered = [edited(letter(n), {"word/footer1.xml": numbered_footer}) for n in (1, 2)]
    restarted = Combined(combine_docx(numbered))

    assert plain.sections()[1].find("w:pgNumType", NS) is None
    assert restarted.sections()[1].find("w:pgNumType", NS).get(f"{W}start") == "1"


def test_a_document_without_a_header_does_not_show_the_previous_one_s():
    no_header = part(letter(2), "word/document.xml").replace(b'<w:headerReference w:type="default" r:id="rId9"/>', b"")
    combined = Combined(combine_docx([letter(1), edited(letter(2), {"word/document.xml": no_header})]))

    second = combined.sections()[1]
    assert combined.text(combined.part_of(second, "headerReference")) == ""


def test_a_document_ending_with_a_table_gets_a_paragraph_to_end_its_section():
    table = "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>cell</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"
    combined = Combined(combine_docx([with_body(letter(1), table), letter(2)]))

    first_section = combined.sections()[0]
    paragraph = first_section.getparent().getparent()
    assert paragraph.tag == f"{W}p" and paragraph.getprevious().tag == f"{W}tbl"
    assert marker(0) in [b.get(f"{W}name") for b in combined.root.find(".//w:tbl", NS).iter(f"{W}bookmarkStart")]


def test_numbered_lists_restart_in_each_document():
    listed = with_body(
        letter(0),
        '<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>item</w:t></w:r></w:p>',
    )
    combined = Combined(combine_docx([listed, listed]))

    num_ids = [n.get(f"{W}val") for n in combined.root.iter(f"{W}numId")]
    assert num_ids[0] == "1" and num_ids[1] != "1"
    numbering = etree.fromstring(combined.zip.read("word/numbering.xml"))
    copy = next(n for n in numbering.findall("w:num", NS) if n.get(f"{W}numId") == num_ids[1])
    assert copy.find("w:lvlOverride/w:startOverride", NS).get(f"{W}val") == "1"


def test_images_are_brought_along_and_identical_ones_shared():
    logo = b"\x89PNG\r\n\x1a\n fake image bytes"
    body = '<w:p><w:r><w:drawing><a:blip xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" r:embed="rIdLogo"/></w:drawing></w:r></w:p>'
    rels = part(letter(0), "word/_rels/document.xml.rels").replace(
        b"</Relationships>",
        b'<Relationship Id="rIdLogo" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image" Target="media/logo.png"/></Relationships>',
    )
    types = part(letter(0), "[Content_Types].xml").replace(
        b'<Default Extension="rels"', b'<Default Extension="png" ContentType="image/png"/><Default Extension="rels"'
    )

    def with_logo(image: bytes) -> bytes:
        parts = {"word/_rels/document.xml.rels": rels, "[Content_Types].xml": types, "word/media/logo.png": image}
        return edited(with_body(letter(0), body), parts)

    combined = Combined(combine_docx([with_logo(logo), with_logo(logo), with_logo(logo + b"2")]))

    embeds = [
        b.get(f"{R}embed") for b in combined.root.iter("{http://schemas.openxmlformats.org/drawingml/2006/main}blip")
    ]
    assert embeds[0] == embeds[1] != embeds[2]
    assert combined.read(combined.rels[embeds[2]]) == logo + b"2"
    assert 'PartName="/publipost/d2/word/media/logo.png"' in combined.zip.read("[Content_Types].xml").decode()


def test_documents_of_one_template_combine_and_the_others_do_not():
    other_styles = edited(
        letter(3), {"word/styles.xml": part(letter(3), "word/styles.xml").replace(b"Normal", b"Plain")}
    )
    whole_count = part(letter(4), "word/footer1.xml").replace(
        b"</w:p>", b'<w:fldSimple w:instr=" NUMPAGES "><w:r><w:t>1</w:t></w:r></w:fldSimple></w:p>'
    )

    assert combine_key(letter(1)) == combine_key(letter(2)) is not None
    assert combine_key(other_styles) != combine_key(letter(1))
    assert combine_key(edited(letter(4), {"word/footer1.xml": whole_count})) is None  # would count the whole chunk
    assert combine_key(b"PK\x03\x04 not a document") is None
    with pytest.raises(NotCombinable):
        combine_docx([letter(1), b"not a zip"])


def test_only_the_styles_in_use_and_those_they_derive_from_are_kept():
    combined = Combined(combine_docx([letter(1), letter(2)]))

    styles = etree.fromstring(combined.zip.read("word/styles.xml"))
    kept = {s.get(f"{W}styleId") for s in styles.findall("w:style", NS)}
    assert {"Normal", "Header", "Footer", "TableGrid", "TableNormal"} <= kept  # used, or the defaults
    assert {"HeaderChar", "ListNumber"} <= kept  # linked from Header; named by the list definitions
    assert "Heading1" not in kept and "Title" not in kept
    assert styles.find("w:latentStyles", NS) is None
    assert b'w:styleId="Heading1"' in part(letter(1), "word/styles.xml")  # documents converted alone keep all
