"""A template compiled once renders every record as plain docxtpl would: same text, same XML in every part."""

import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from docx import Document
from docx.oxml import parse_xml
from docx.table import Table
from docxtpl import RichText
from jinja2.sandbox import SandboxedEnvironment
from publipost_merge.fast_rendering import CompiledTemplate, CompiledTemplateCache, NotCompilable
from publipost_merge.rendering import RenderFailed, render_docx, render_docx_reference

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
LETTER = Path(__file__).parents[2] / "samples" / "letter.docx"


def letter_record(number: int) -> dict[str, Any]:
    return {
        "name": ["Ann Martin", 'Dupont & Fils <SARL> "Le Coin"', "Zoé O'Brien"][number % 3],
        "address": ["1 rue de la Paix", "Bât. B\n12 avenue Foch", "3 place d'Italie"][number % 3],
        "postal_code": f"{75001 + number}",
        "city": "Paris",
        "date": "25/11/2026",
        "document_number": f"PN-{number:05d}",
        "contract": f"C-{number}",
        "customer_number": f"K{number}",
        "branch": ["Lyon", "Nantes & Rennes"][number % 2],
        "premium": 400 + 150 * number,
        "tax": 80,
        "amount_due": 480 + 150 * number,
        "signatory": "Claire Durand",
    }


def saved(document: Any) -> bytes:
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def add_run_xml(paragraph: Any, xml: str) -> None:
    paragraph._p.append(parse_xml(f"<w:r {W}>{xml}</w:r>"))


def table_row_loop() -> bytes:
    document = Document()
    document.add_paragraph("Statement for {{ name }}")
    table = document.add_table(rows=4, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Item", "Amount"
    table.cell(1, 0).text = "{%tr for item in items %}"
    table.cell(2, 0).text, table.cell(2, 1).text = "{{ item.label }}", "{{ item.amount }} EUR"
    table.cell(3, 0).text = "{%tr endfor %}"
    columns = document.add_table(rows=1, cols=3)
    columns.cell(0, 0).text = "{%tc for month in months %}"
    columns.cell(0, 1).text = "{{ month }}"
    columns.cell(0, 2).text = "{%tc endfor %}"
    document.add_paragraph("{% for item in items %}{{ loop.index }}. {{ item.label }}; {% endfor %}")
    return saved(document)


def conditions() -> bytes:
    document = Document()
    document.add_paragraph("{%p if vip %}")
    document.add_paragraph("Thank you for your loyalty, {{ name }}.")
    document.add_paragraph("{%p else %}")
    document.add_paragraph("Welcome, {{ name }}.")
    document.add_paragraph("{%p endif %}")
    greeting = document.add_paragraph()
    for text in ("Dear ", "{%r if title %}", "{{ title }} ", "{%r endif %}", "{{ name }},"):
        greeting.add_run(text)
    document.add_paragraph("{% if amount > 500 %}Pay in three instalments.{% else %}Pay at once.{% endif %}")
    document.add_paragraph("Note: {{ note }}")
    return saved(document)


def headers_and_footers_with_fields() -> bytes:
    document = Document()
    document.add_paragraph("Body for {{ name }}")
    header = document.sections[0].header.paragraphs[0]
    header.text = "{{ branch }} — page "
    header._p.append(parse_xml(f'<w:fldSimple {W} w:instr=" PAGE "><w:r><w:t>1</w:t></w:r></w:fldSimple>'))
    footer = document.sections[0].footer.paragraphs[0]
    footer.text = "Ref {{ document_number }}, page "
    add_run_xml(footer, '<w:fldChar w:fldCharType="begin"/>')
    add_run_xml(footer, '<w:instrText xml:space="preserve"> NUMPAGES </w:instrText>')
    add_run_xml(footer, '<w:fldChar w:fldCharType="separate"/>')
    add_run_xml(footer, "<w:t>1</w:t>")
    add_run_xml(footer, '<w:fldChar w:fldCharType="end"/>')
    document.core_properties.title = "Letter for {{ name }}"
    return saved(document)


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0\xff\0\0"))
        + chunk(b"IEND", b"")
    )


def with_pictures() -> bytes:
    document = Document()
    document.add_picture(io.BytesIO(tiny_png()))
    document.add_paragraph("{{ name }}")
    document.add_picture(io.BytesIO(tiny_png()))
    return saved(document)


def with_footnotes(sections: int = 1) -> bytes:
    """python-docx writes no footnotes: the part is added to the package by hand."""
    document = Document()
    paragraph = document.add_paragraph("Contract {{ contract }}")
    add_run_xml(paragraph, '<w:footnoteReference w:id="1"/>')
    for _ in range(sections - 1):
        document.add_section()
    footnotes = (
        f"<w:footnotes {W}>"
        '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
        '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r></w:p>'
        '</w:footnote><w:footnote w:id="1"><w:p><w:r><w:t>Signed by {{ name }}</w:t></w:r></w:p></w:footnote>'
        "</w:footnotes>"
    )
    source = zipfile.ZipFile(io.BytesIO(saved(document)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for name in source.namelist():
            data = source.read(name)
            if name == "[Content_Types].xml":
                data = data.replace(
                    b"</Types>",
                    b'<Override PartName="/word/footnotes.xml" ContentType="application/'
                    b'vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"/></Types>',
                )
            elif name == "word/_rels/document.xml.rels":
                data = data.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdFootnotes" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                    b'relationships/footnotes" Target="footnotes.xml"/></Relationships>',
                )
            package.writestr(name, data)
        package.writestr("word/footnotes.xml", footnotes)
    return out.getvalue()


def generic_record(number: int) -> dict[str, Any]:
    return {
        "name": ["Ann", 'Dupont & Fils <SARL> "Le Coin"', "Zoé"][number % 3],
        "title": [None, "Dr", ""][number % 3],
        "vip": number % 2 == 0,
        "amount": 300 * number,
        "note": ["none", "first line\nsecond line", "tab\there"][number % 3],
        "items": [{"label": f"Item <{index}> & co", "amount": 10 * index} for index in range(number)],
        "months": ["Jan", "Feb", "Mar", "Apr", "May"][: number + 1],
        "branch": "Lyon & Co",
        "document_number": f"D-{number}",
        "contract": f"C-{number}",
    }


TEMPLATES = {
    "letter": (lambda: LETTER.read_bytes(), letter_record),
    "table row and cell loops": (table_row_loop, generic_record),
    "paragraph and run conditions, escaping, newlines": (conditions, generic_record),
    "headers and footers with fields, core properties": (headers_and_footers_with_fields, generic_record),
    "pictures": (with_pictures, generic_record),
    "footnotes": (with_footnotes, generic_record),
}


def cell_texts(table: Table) -> list[str]:
    texts = []
    for row in table.rows:
        for cell in row.cells:
            texts += [paragraph.text for paragraph in cell.paragraphs]
            for inner in cell.tables:
                texts += cell_texts(inner)
    return texts


def document_text(docx: bytes) -> dict[str, list[str]]:
    document = Document(io.BytesIO(docx))
    text: dict[str, list[str]] = {
        "body": [paragraph.text for paragraph in document.paragraphs],
        "tables": [text for table in document.tables for text in cell_texts(table)],
        "core": [document.core_properties.title],
    }
    for number, section in enumerate(document.sections):
        for kind, part in (("header", section.header), ("footer", section.footer)):
            text[f"{kind} {number}"] = [paragraph.text for paragraph in part.paragraphs] + [
                text for table in part.tables for text in cell_texts(table)
            ]
    return text


def members(docx: bytes) -> dict[str, bytes]:
    package = zipfile.ZipFile(io.BytesIO(docx))
    assert package.testzip() is None
    return {name: package.read(name) for name in package.namelist()}


@pytest.fixture
def cache() -> CompiledTemplateCache:
    return CompiledTemplateCache(SandboxedEnvironment(autoescape=True), capacity=4)


@pytest.mark.parametrize("name", TEMPLATES)
def test_each_record_renders_as_plain_docxtpl_renders_it(name, cache):
    make_template, make_record = TEMPLATES[name]
    template = make_template()
    assert isinstance(cache.get(template), CompiledTemplate), "this template must take the compiled path"
    for number in range(4):
        record = make_record(number)
        reference, ours = render_docx_reference(template, record), render_docx(template, record)
        assert document_text(ours) == document_text(reference)
        assert members(ours) == members(reference)  # every part's XML, byte for byte


def test_the_letter_shows_each_recipients_values():
    text = document_text(render_docx(LETTER.read_bytes(), letter_record(1)))
    assert 'Dupont & Fils <SARL> "Le Coin"' in text["body"][0]
    assert "Bât. B\n12 avenue Foch" in text["body"][0]  # a newline in a value becomes a line break
    assert "As the amount is over 500 EUR" in "\n".join(text["body"])
    assert text["tables"][-1] == "630 EUR"
    assert "Nantes & Rennes" in text["header 0"][0]


def test_a_table_row_loop_repeats_the_row_once_per_item():
    template = table_row_loop()
    text = document_text(render_docx(template, generic_record(3)))
    assert text["tables"][:8] == ["Item", "Amount", "Item <0> & co", "0 EUR", "Item <1> & co", "10 EUR"] + [
        "Item <2> & co",
        "20 EUR",
    ]
    assert text["tables"][8:] == ["Jan", "Feb", "Mar", "Apr"]


def test_footnotes_are_rendered():
    footnotes = members(render_docx(with_footnotes(), generic_record(1)))["word/footnotes.xml"]
    assert "Signed by Dupont &amp; Fils &lt;SARL&gt;" in footnotes.decode("utf-8")


def test_footnotes_with_tags_in_a_document_of_two_sections_fall_back_to_plain_docxtpl(cache):
    template = with_footnotes(sections=2)
    assert isinstance(cache.get(template), NotCompilable)
    record = generic_record(2)
    assert members(render_docx(template, record)) == members(render_docx_reference(template, record))


def test_a_record_holding_docxtpl_rich_text_renders_through_plain_docxtpl(cache):
    document = Document()
    document.add_paragraph("{{r name }}")
    template = saved(document)
    record = {"name": RichText("Ann", bold=True)}
    assert not cache.get(template).accepts(record)
    assert document_text(render_docx(template, record)) == document_text(render_docx_reference(template, record))
    assert "<w:b/>" in members(render_docx(template, record))["word/document.xml"].decode("utf-8")


def test_a_jinja_syntax_error_fails_each_record_as_plain_docxtpl_does(cache):
    document = Document()
    document.add_paragraph("Dear {{ name ,")
    template = saved(document)
    assert isinstance(cache.get(template), NotCompilable)
    with pytest.raises(RenderFailed) as reference:
        render_docx_reference(template, {"name": "Ann"})
    with pytest.raises(RenderFailed) as ours:
        render_docx(template, {"name": "Ann"})
    assert str(ours.value) == str(reference.value)


@pytest.mark.parametrize(
    "attack",
    ["{{ name.__class__.__mro__[1].__subclasses__() }}", "{{ cycler.__init__.__globals__.os }}"],
)
def test_the_compiled_path_is_sandboxed(attack, cache):
    document = Document()
    document.add_paragraph(attack)
    template = saved(document)
    assert isinstance(cache.get(template), CompiledTemplate)
    with pytest.raises(RenderFailed, match="unsafe|SecurityError|undefined"):
        render_docx(template, {"name": "x"})


def test_the_compiled_path_bounds_range():
    document = Document()
    document.add_paragraph("{% for i in range(100000000) %}x{% endfor %}")
    with pytest.raises(RenderFailed, match="at most 10000"):
        render_docx(saved(document), {})


def test_the_cache_keeps_the_last_templates_used_only(cache):
    templates = []
    for number in range(6):
        document = Document()
        document.add_paragraph(f"Template {number}: {{{{ name }}}}")
        templates.append(saved(document))
    for template in templates:
        cache.get(template)
    assert len(cache) == 4
    assert cache.get(templates[-1]) is cache.get(templates[-1])
