"""Word's own mail-merge fields become docxtpl placeholders at upload.

`mergefield_docx` writes the fields the way Word does (python-docx for the document, raw XML for the
fields); the integration tests use it too.
"""

import html
import io
import zipfile

import pytest
from docx import Document
from docx.oxml import parse_xml
from docx.oxml.ns import qn
from publipost_template.domain import TemplateRejected
from publipost_template.mergefields import convert_mergefields

from tests.unit.test_template_inspection import docx_with, inspect

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
MAIL_MERGE_SETTINGS = (
    '<w:mailMerge><w:mainDocumentType w:val="formLetters"/><w:dataType w:val="textFile"/>'
    '<w:query w:val="SELECT * FROM clients.csv"/></w:mailMerge>'
)


def simple_field(instruction: str, shown: str) -> str:
    shown_run = f"<w:r><w:rPr><w:b/></w:rPr><w:t>{shown}</w:t></w:r>"
    return f'<w:fldSimple {W} w:instr="{html.escape(instruction)}">{shown_run}</w:fldSimple>'


def complex_field(instruction: str, shown: str) -> list[str]:
    """Begin, the instruction split over two runs as Word often does, separate, the shown result, end."""
    middle = len(instruction) // 2
    return [
        f'<w:r {W}><w:fldChar w:fldCharType="begin"/></w:r>',
        f'<w:r {W}><w:instrText xml:space="preserve">{html.escape(instruction[:middle])}</w:instrText></w:r>',
        f'<w:r {W}><w:instrText xml:space="preserve">{html.escape(instruction[middle:])}</w:instrText></w:r>',
        f'<w:r {W}><w:fldChar w:fldCharType="separate"/></w:r>',
        f'<w:r {W}><w:rPr><w:i/></w:rPr><w:t>{shown}</w:t></w:r>',
        f'<w:r {W}><w:fldChar w:fldCharType="end"/></w:r>',
    ]


def mergefield_docx(*paragraphs: list[str | list[str]], header: list[str | list[str]] | None = None) -> bytes:
    """Paragraphs made of plain text (str) and fields (a list of run XML, or a one-item list for fldSimple);
    settings.xml carries Word's <w:mailMerge> link to its data source, as a real mail-merge document does."""
    document = Document()

    def fill(paragraph, pieces):
        for piece in pieces:
            if isinstance(piece, str):
                paragraph.add_run(piece)
            else:
                for xml in piece:
                    paragraph._p.append(parse_xml(xml))

    for pieces in paragraphs:
        fill(document.add_paragraph(), pieces)
    if header is not None:
        fill(document.sections[0].header.paragraphs[0], header)
    # where Word's schema wants it: before the default tab stop
    mail_merge = parse_xml(MAIL_MERGE_SETTINGS.replace("<w:mailMerge>", f"<w:mailMerge {W}>"))
    document.settings.element.find(qn("w:defaultTabStop")).addprevious(mail_merge)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def word_letter() -> bytes:
    """A letter made with Word's mail merge: simple and complex fields, accents, spaces, switches, a header."""
    return mergefield_docx(
        ["Dear ", [simple_field(" MERGEFIELD Name ", "«Name»")], ","],
        ["Client: ", complex_field(' MERGEFIELD  "Nom du client" \\* Upper \\* MERGEFORMAT ', "«Nom du client»")],
        ["Premium: ", complex_field(" MERGEFIELD Premium \\# \"0.00\" ", "«Premium»"), " EUR"],
        ["Branch", complex_field(' MERGEFIELD Agence \\b " - " ', "«Agence»")],
        header=["Ref. ", complex_field(" MERGEFIELD Customer_Number ", "«Customer_Number»")],
    )


def paragraphs(docx: bytes) -> list[str]:
    return [p.text for p in Document(io.BytesIO(docx)).paragraphs]


def test_each_merge_field_becomes_a_placeholder_and_the_mapping_is_reported():
    conversion = convert_mergefields(word_letter())
    assert conversion is not None
    assert conversion.mapping == {
        "Name": "name",
        "Nom du client": "nom_du_client",
        "Premium": "premium",
        "Agence": "agence",
        "Customer_Number": "customer_number",
    }
    assert paragraphs(conversion.docx) == [
        "Dear {{ name }},",
        "Client: {{ nom_du_client|upper }}",
        "Premium: {{ premium }} EUR",
        "Branch{% if agence %} - {{ agence }}{% endif %}",
    ]
    header = Document(io.BytesIO(conversion.docx)).sections[0].header.paragraphs[0].text
    assert header == "Ref. {{ customer_number }}"


def test_a_format_word_would_apply_is_reported_as_not_applied():
    conversion = convert_mergefields(word_letter())
    assert conversion.notes == ["«Premium»: Word's format '0.00' is not applied; the record's value prints as sent"]


def test_the_placeholder_keeps_the_formatting_of_the_text_it_replaces():
    document = Document(io.BytesIO(convert_mergefields(word_letter()).docx))
    runs = {run.text: run for p in document.paragraphs for run in p.runs}
    assert runs["{{ name }}"].bold
    assert runs["{{ nom_du_client|upper }}"].italic


def test_the_link_to_words_data_source_is_removed():
    converted = convert_mergefields(word_letter()).docx
    assert b"mailMerge" in zipfile.ZipFile(io.BytesIO(word_letter())).read("word/settings.xml")
    assert b"mailMerge" not in zipfile.ZipFile(io.BytesIO(converted)).read("word/settings.xml")


def test_a_document_without_merge_fields_is_left_alone():
    plain = docx_with("NEXT steps for {{ name }}")
    assert convert_mergefields(plain) is None
    assert convert_mergefields(mergefield_docx(["Page ", complex_field(" PAGE ", "1")])) is None


def test_declared_custom_fields_may_use_the_word_name():
    inspection = inspect(word_letter(), custom="Nom du client, Agence")
    assert inspection.converted
    assert inspection.fields.custom == ["nom_du_client", "agence"]
    assert inspection.fields.predefined == ["customer_number", "name", "premium"]


def test_a_merge_field_inside_a_word_if_field_is_refused_with_the_jinja_to_write():
    def run(inner: str) -> str:
        return f"<w:r {W}>{inner}</w:r>"

    condition = html.escape(' = "M." "Sir" "Madam" ')
    nested = [
        run('<w:fldChar w:fldCharType="begin"/>'),
        run('<w:instrText xml:space="preserve"> IF </w:instrText>'),
        *complex_field(" MERGEFIELD Civilité ", "«Civilité»"),
        run(f'<w:instrText xml:space="preserve">{condition}</w:instrText>'),
        run('<w:fldChar w:fldCharType="separate"/>'),
        run("<w:t>Sir</w:t>"),
        run('<w:fldChar w:fldCharType="end"/>'),
    ]
    with pytest.raises(TemplateRejected) as refused:
        inspect(mergefield_docx(["Dear ", nested]))
    message = refused.value.problems[0].message
    assert "«Civilité»" in message and "Word IF field" in message and "{% if civilite %}" in message


@pytest.mark.parametrize(
    ("instruction", "says"),
    [(" ADDRESSBLOCK \\f \"<<_FIRST0_>>\" ", "address block"), (" NEXT ", "own document")],
)
def test_word_merge_fields_with_no_equivalent_are_refused_saying_why(instruction, says):
    with pytest.raises(TemplateRejected) as refused:
        inspect(mergefield_docx([[simple_field(instruction, "«AddressBlock»")]]))
    assert says in refused.value.problems[0].message
    assert refused.value.problems[0].context["part"] == "body"


def test_a_converted_template_is_checked_like_any_other():
    with pytest.raises(TemplateRejected) as refused:
        inspect(word_letter())
    assert refused.value.problems[0].context["names"] == ["agence", "nom_du_client"]
