"""Rendering is sandboxed and bounded: a template reads its data and nothing else, cannot run forever, and\ncannot build a document or a value past the document budget."""

import io
import time
import tracemalloc

import pytest
from docx import Document
from publipost_merge.fast_rendering import CompiledTemplate
from publipost_merge.rendering import _COMPILED, OverBudget, RenderFailed, render_docx, render_within


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


def test_a_document_growing_past_its_budget_stops_there_naming_the_budget():
    loops = template("{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}")
    tracemalloc.start()
    with pytest.raises(OverBudget, match=r"over the budget of 100000 bytes .*\(PUBLIPOST_MAX_DOCUMENT_BYTES\)"):
        render_docx(loops, {}, max_document_bytes=100_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50_000_000  # stopped at the budget, not after building 10^8 characters


def test_the_budget_counts_every_part_of_the_document():
    within = template("{{ 'x' * 600 }}")
    assert "x" * 600 in text_of(render_docx(within, {}, max_document_bytes=10_000))
    with_header = Document()
    with_header.add_paragraph("{{ 'x' * 600 }}")
    with_header.sections[0].header.paragraphs[0].text = "{% for i in range(20) %}{{ 'y' * 500 }}{% endfor %}"
    out = io.BytesIO()
    with_header.save(out)
    with pytest.raises(OverBudget):
        render_docx(out.getvalue(), {}, max_document_bytes=10_000)


@pytest.mark.parametrize(
    ("expression", "size"),
    [
        ("{{ 'a'*100000*100000 }}", 10_000_000_000),
        ("{{ name * 1000000000 }}", 3_000_000_000),
        ("{{ [name] * 100000 * 100000 }}", 10_000_000_000),
        ("{% set ns = namespace(s=name) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", None),
    ],
)
def test_a_huge_string_or_list_is_refused_before_it_is_built(expression, size):
    tracemalloc.start()
    with pytest.raises(OverBudget, match=r"would build a value of (\d+) characters or items") as refused:
        render_docx(template(f"Dear {{{{ name }}}}, {expression}"), {"name": "Ann"})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "(PUBLIPOST_MAX_DOCUMENT_BYTES)" in str(refused.value)
    if size is not None:
        assert f"a value of {size} characters" in str(refused.value)
    assert peak < 50_000_000


def test_compiling_a_template_computes_none_of_its_expressions():
    """Jinja folds constant expressions at compile time, outside any budget; merge's environment folds none."""
    tracemalloc.start()
    compiled = _COMPILED.get(template("{{ 'a'|center(300000000) }}{{ ('b' ~ 'c') * 3 }}"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(compiled, CompiledTemplate)
    assert peak < 50_000_000


def test_short_repetitions_and_arithmetic_render_as_before():
    docx = render_docx(template("{{ '-' * 5 }} {{ premium + tax }} {{ name + '!' }} {{ ([1] + [2]) | length }}"),
                       {"premium": 100, "tax": 20, "name": "Ann"})
    assert "----- 120 Ann! 2" in text_of(docx)
