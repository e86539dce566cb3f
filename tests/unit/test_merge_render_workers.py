"""merge renders in worker processes under a memory limit: whatever a template does, it fails its record alone."""

import io
import os
import zipfile
from pathlib import Path

import pytest
from docx import Document
from publipost_merge.render_workers import RenderLimits, RenderWorkers
from publipost_merge.rendering import RenderFailed, render_docx

from tests.support import sample_record

LETTER = Path(__file__).parents[2] / "samples" / "letter.docx"


def template(*paragraphs: str) -> bytes:
    document = Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def text_of(docx: bytes) -> str:
    return "\n".join(p.text for p in Document(io.BytesIO(docx)).paragraphs)


def parts(docx: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(docx)) as package:
        return {name: package.read(name) for name in package.namelist()}


@pytest.fixture
async def workers():
    pool = RenderWorkers(1, RenderLimits(timeout_s=3, memory_bytes=400 << 20, max_document_bytes=1_000_000))
    yield pool
    await pool.close()


async def test_a_worker_renders_what_the_service_renders_in_process(workers):
    letter = LETTER.read_bytes()
    for n in (1, 2, 3):
        assert parts(await workers.render(letter, sample_record(n))) == parts(render_docx(letter, sample_record(n)))


async def test_a_template_filling_memory_fails_its_record_naming_the_limit_and_the_next_one_renders(workers):
    # `~` is no operator the sandbox can intercept: the string doubles until the worker's address space is full.
    doubling = template(
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{{ ns.s | length }}",
    )
    with pytest.raises(RenderFailed) as failed:
        await workers.render(doubling, {})
    assert str(failed.value) == (
        "the document needs more memory than the 419430400 bytes a render may use "
        "(PUBLIPOST_RENDER_MEMORY_BYTES): its template builds too large a value"
    )
    assert "Hello Ann" in text_of(await workers.render(template("Hello {{ name }}"), {"name": "Ann"}))


async def test_a_document_over_the_budget_fails_in_the_worker_with_the_budget_named(workers):
    loops = template("{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}")
    with pytest.raises(RenderFailed, match=r"over the budget of 1000000 bytes .*PUBLIPOST_MAX_DOCUMENT_BYTES"):
        await workers.render(loops, {})


async def test_a_worker_past_the_timeout_is_killed_and_the_next_record_gets_a_new_one(workers):
    endless = template(
        "{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    )
    with pytest.raises(RenderFailed, match="rendering took over 3s"):
        await workers.render(endless, {})
    assert "Hello Bob" in text_of(await workers.render(template("Hello {{ name }}"), {"name": "Bob"}))


async def test_closing_the_pool_ends_its_workers():
    pool = RenderWorkers(2, RenderLimits(timeout_s=3, memory_bytes=400 << 20, max_document_bytes=1_000_000))
    assert pool.pids() == []
    await pool.render(template("Hello {{ name }}"), {"name": "Ann"})
    (pid,) = pool.pids()  # the second worker starts only when two records are rendered at once
    await pool.close()
    assert pool.pids() == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
