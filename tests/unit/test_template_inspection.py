"""What an uploaded DOCX must be: a real DOCX within the limits, Jinja that parses and stays within its data.

The builders here make the test documents (python-docx, zipfile); the integration tests use them too.
"""

import io
import struct
import tracemalloc
import zipfile

import pytest
from docx import Document
from publipost_template.domain import TemplateRejected
from publipost_template.inspection import inspect_upload
from publipost_template.package import PackageLimits

LIMITS = PackageLimits(max_bytes=5_000_000, max_uncompressed_bytes=20_000_000, max_entries=200, max_ratio=100)


def docx_with(
    *paragraphs: str,
    table: list[list[str]] | None = None,
    header: str | None = None,
    footer: str | None = None,
    title: str | None = None,
) -> bytes:
    """A DOCX whose body has these paragraphs (then the table), and the given header, footer and title."""
    document = Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, text in enumerate(row):
                grid.cell(r, c).text = text
    if header is not None:
        document.sections[0].header.paragraphs[0].text = header
    if footer is not None:
        document.sections[0].footer.paragraphs[0].text = footer
    if title is not None:
        document.core_properties.title = title
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def rezip(docx: bytes, entries: dict[str, bytes]) -> bytes:
    """The same DOCX with these entries replaced or added (deflated): how a zip bomb hides in an honest document."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            if entry.filename not in entries:
                target.writestr(entry, source.read(entry))
        for name, data in entries.items():
            target.writestr(name, data)
    return out.getvalue()


def declare_size(archive: bytes, name: str, size: int) -> bytes:
    """Make the zip's local and central headers claim `size` uncompressed bytes for `name`: a lying zip."""
    data = bytearray(archive)
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = data.find(signature)
        while start != -1:
            if data[start + name_at : start + name_at + len(name)] == name.encode():
                data[start + size_at : start + size_at + 4] = struct.pack("<I", size)
            start = data.find(signature, start + 4)
    return bytes(data)


def inspect(data: bytes, custom: str = "", entity_type: str = "client", limits: PackageLimits = LIMITS):
    return inspect_upload(data, limits=limits, entity_type=entity_type, custom_fields=custom)


def refusal(data: bytes, **kwargs: object):
    with pytest.raises(TemplateRejected) as refused:
        inspect(data, **kwargs)
    return refused.value.problems[0]


# --- the container ------------------------------------------------------------------------------


def test_fields_are_read_from_body_table_header_footer_and_document_title():
    data = docx_with(
        "Dear {{ name }},",
        table=[["Premium", "{{ premium }}"]],
        header="{{ branch }}",
        footer="Ref {{ customer_number }}",
        title="Notice {{ document_number }}",
    )
    inspection = inspect(data)
    assert inspection.fields.fields == ["branch", "customer_number", "document_number", "name", "premium"]
    assert inspection.docx == data and not inspection.converted


def test_docxtpl_paragraph_row_and_rich_text_tags_are_understood():
    data = docx_with(
        "{%p if name %}",
        "Dear {{r name }}",
        "{%p endif %}",
        table=[["Item", "Amount"], ["{%tr for line in lines %}", ""], ["{{ line.label }}", "{{ line.amount }}"],
               ["{%tr endfor %}", ""]],
    )
    assert inspect(data, entity_type="invoice").fields.fields == ["lines", "name"]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"plain text, not a zip", "not a DOCX file (not a zip archive"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "legacy .doc or a password-protected"),
    ],
)
def test_what_is_not_a_docx_is_refused_saying_what_it_is(data, says):
    problem = refusal(data)
    assert problem.field == "file"
    assert says in problem.message


def test_a_zip_that_is_not_a_word_document_is_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert "no word/document.xml" in refusal(out.getvalue()).message


def test_a_macro_enabled_document_is_refused():
    data = docx_with("Hello")
    types = zipfile.ZipFile(io.BytesIO(data)).read("[Content_Types].xml").replace(
        b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        b"application/vnd.ms-word.document.macroEnabled.main+xml",
    )
    assert "macro-enabled document (.docm)" in refusal(rezip(data, {"[Content_Types].xml": types})).message


def test_a_file_over_the_size_limit_is_refused_with_the_limit():
    problem = refusal(docx_with("Hello"), limits=PackageLimits(1000, 20_000_000, 200, 100))
    assert problem.message == "the file is over the 1000-byte limit"


def test_a_zip_bomb_is_refused_for_its_declared_uncompressed_size():
    bomb = rezip(docx_with("Hello {{ name }}"), {"word/media/image1.png": b"\0" * 30_000_000})
    assert len(bomb) < 200_000
    problem = refusal(bomb)
    assert "once decompressed; at most 20000000" in problem.message


def test_an_entry_compressed_far_beyond_what_documents_reach_is_refused():
    bomb = rezip(docx_with("Hello {{ name }}"), {"word/media/image1.png": b"\0" * 2_000_000})
    problem = refusal(bomb)
    assert "word/media/image1.png" in problem.message and "over the 100:1 limit" in problem.message


def test_too_many_entries_are_refused():
    data = rezip(docx_with("Hello"), {f"word/media/{n}.bin": b"x" for n in range(20)})
    problem = refusal(data, limits=PackageLimits(5_000_000, 20_000_000, 15, 100))
    assert "entries in the archive; at most 15" in problem.message


def test_an_entry_that_inflates_past_its_declared_size_is_refused_never_inflated():
    """The zip says document.xml is its honest size; 10 MB follow. zipfile stops at the declared size, the CRC fails."""
    data = docx_with("Hello")
    honest = zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml")
    padded = rezip(data, {"word/document.xml": honest + b" " * 10_000_000})
    lying = declare_size(padded, "word/document.xml", len(honest))
    problem = refusal(lying)
    assert problem.message.startswith("part word/document.xml of the document cannot be read: ")
    assert "CRC" in problem.message


# --- the Jinja ------------------------------------------------------------------------------------


def test_a_syntax_error_names_the_tag_the_part_and_the_paragraph_text():
    problem = refusal(docx_with("Dear {{ name }},", "Total due: {{ amount_due | }} EUR"))
    assert problem.field == "file"
    assert problem.context["part"] == "body"
    assert problem.context["tag"] == "{{ amount_due | }}"
    assert problem.context["text"] == "Total due: {{ amount_due | }} EUR"
    assert "{{ amount_due | }}" in problem.message and "in the body" in problem.message


def test_a_syntax_error_in_a_table_cell_says_which_cell():
    problem = refusal(docx_with("Dear {{ name }}", table=[["Premium", "{{ premium }}"], ["Tax", "{{ tax + }}"]]))
    assert problem.context["table_cell"] == "table 1, row 2, cell 2"
    assert problem.context["tag"] == "{{ tax + }}"


@pytest.mark.parametrize(("where", "part"), [("header", "header (header1.xml)"), ("footer", "footer (footer1.xml)")])
def test_a_syntax_error_in_a_header_or_footer_names_it(where, part):
    problem = refusal(docx_with("Dear {{ name }}", **{where: "{% if name %}"}))
    assert problem.context["part"] == part
    assert "{% if name %} is never closed" in problem.message


def test_an_unknown_closing_tag_is_the_one_named():
    problem = refusal(docx_with("{% for line in lines %}", "{{ line }}", "{% endfro %}"), entity_type="invoice")
    assert problem.context["tag"] == "{% endfro %}"
    assert "unknown tag 'endfro'" in problem.message


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ("{{ name.__class__.__mro__[1].__subclasses__() }}", ".__class__"),
        ("{{ name.mro }}", ".mro"),
        ("{{ name['__class__'] }}", "['__class__']"),
        ("{{ name|attr('__globals__') }}", "|attr('__globals__')"),
        ("{{ name|attr(city) }}", "|attr(a computed name)"),
        ("{{ name['_' ~ '_class__'] }}", "[a key built from strings]"),
        ("{{ '{0.__init__.__globals__}'.format(name) }}", "'{0.__init__.__globals__}'"),
        ("{{ cycler.__init__.__globals__.os }}", ".__globals__"),
        ("{% include 'other.docx' %}", "{% include %}"),
        ("{{ 9 ** 9 ** 9 }}", "the ** operator"),
    ],
)
def test_a_template_reaching_beyond_its_data_is_refused_saying_how(expression, named):
    problem = refusal(docx_with("Dear {{ name }}", f"Ref {expression}"))
    assert named in problem.context["expressions"]
    assert problem.context["text"] == f"Ref {expression}"
    assert "may only read its fields" in problem.message


def test_an_attribute_walk_in_the_document_properties_is_refused_too():
    problem = refusal(docx_with("Dear {{ name }}", title="{{ name.__class__ }}"))
    assert problem.context["part"] == "document properties (title)"


def test_whatever_a_parser_throws_becomes_a_refusal_of_the_file():
    problem = refusal(rezip(docx_with("Hello"), {"word/document.xml": b"<w:document><unclosed>"}))
    assert problem.field == "file"
    assert problem.message.startswith("part word/document.xml of the document is not well-formed XML: ")


# --- what a template may build --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "size"),
    [
        ("{{ 'a'*100000*100000 }}", "10000000000"),
        ("{{'a'*1000000000}}", "1000000000"),
        ("{{ 100000 * [0] * 100000 }}", "10000000000"),
        ("{% set line = '-' * 200000 %}{{ line }}", "200000"),
    ],
)
def test_a_literal_repeated_into_a_huge_value_is_refused_without_being_built(expression, size):
    tracemalloc.start()
    problem = refusal(docx_with("Dear {{ name }}", f"Ref {expression}"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert problem.field == "file"
    assert f"repeats a literal into {size} characters or items" in problem.message
    assert "at most 100000" in problem.message
    assert (problem.context["part"], problem.context["text"]) == ("body", f"Ref {expression}")
    assert peak < 50_000_000


def test_reading_a_templates_fields_evaluates_none_of_it():
    """Jinja's code generator, which lists the fields, computes constant expressions it can fold."""
    tracemalloc.start()
    inspection = inspect(docx_with("Dear {{ name }}", "{{ 'a'|center(300000000) }}{{ ('b' ~ 'c') * 3 }}{{ -(2 + 3) }}"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert inspection.fields.fields == ["name"]
    assert peak < 50_000_000


def test_short_repetitions_and_arithmetic_on_fields_are_accepted():
    inspection = inspect(docx_with("{{ '-' * 80 }}", "{{ premium * 100000000 }} {{ '=' * premium }}"))
    assert inspection.fields.fields == ["premium"]
