"""Rendering is sandboxed and bounded: a template reads its data and nothing else, and cannot run forever."""

import io
import time

import pytest
from docx import Document
from publipost_merge.rendering import RenderFailed, render_docx, render_within


def template(*paragraphs: str) -> bytes:
    document = Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def text_of(docx: bytes) -> str:
    return "\n".join(p.text for p in Document(io.BytesIO(docx)).paragraphs)


def test_xml_special_characters_in_values_render_as_text():
    docx = render_docx(template("Dear {{ name }},"), {"name": "Dupont & Fils <SARL>"})
    assert "Dear Dupont & Fils <SARL>," in text_of(docx)


@pytest.mark.parametrize(
    "attack",
    [
        "{{ name.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ ''.__class__.__base__ }}",
    ],
)
def test_reaching_python_internals_fails_with_a_clear_error(attack):
    with pytest.raises(RenderFailed, match="unsafe|SecurityError|undefined"):
        render_docx(template(attack), {"name": "x"})


def test_a_huge_range_is_refused():
    with pytest.raises(RenderFailed, match="at most 10000"):
        render_docx(template("{% for i in range(100000000) %}x{% endfor %}"), {})


async def test_a_template_that_loops_without_end_is_stopped_and_the_next_record_renders():
    endless = template(
        "{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    )
    started = time.monotonic()
    with pytest.raises(RenderFailed, match="loops too long"):
        await render_within(0.5, endless, {})
    assert time.monotonic() - started < 10  # stopped, not run to the end (which takes days)

    assert "Hello Ann" in text_of(await render_within(5, template("Hello {{ name }}"), {"name": "Ann"}))
