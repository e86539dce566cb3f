"""How a chunk goes through a backend: combined once, and one by one only when that fails.

The backend here is a stand-in that reads the combined DOCX's markers and
answers a PDF with one page per document; the real LibreOffice is exercised
by tests/integration/test_render_pdf_service.py.
"""

import asyncio
import io
import zipfile
from pathlib import Path

from publipost_merge.rendering import render_docx
from publipost_render_pdf.batch import CombinedRuns, convert_documents, prepare
from publipost_render_pdf.combine import MARKER_PREFIX
from publipost_render_pdf.converter import ConversionFailed
from pypdf import PdfReader, PdfWriter

from tests.support import sample_record, wait_until
from tests.unit.test_render_external_links import linked_picture

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"


class OnePagePerDocument:
    """Converts like LibreOffice would lay out letters of one page; refuses anything that says POISON."""

    name = "stand-in"

    def __init__(self) -> None:
        self.runs: list[int] = []
        self.entered = 0
        self.hold = asyncio.Event()
        self.hold.set()

    async def convert(self, docx: bytes, *, retry: bool = True) -> bytes:
        self.entered += 1
        await self.hold.wait()
        try:
            document = zipfile.ZipFile(io.BytesIO(docx)).read("word/document.xml")
        except zipfile.BadZipFile:
            self.runs.append(0)
            raise ConversionFailed("General Error: not a document") from None
        markers = document.count(f'w:name="{MARKER_PREFIX}'.encode())
        self.runs.append(markers)
        if b"POISON" in document:
            raise ConversionFailed("General Error: the document is damaged")
        writer = PdfWriter()
        for index in range(max(markers, 1)):
            writer.add_blank_page(width=200, height=200)
            if markers:
                writer.add_named_destination(f"{MARKER_PREFIX}{index:05d}", index)
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()


def letter(n: int, **overrides: object) -> bytes:
    return render_docx(SAMPLE.read_bytes(), sample_record(n, **overrides))


async def convert(documents: list[bytes], backend: OnePagePerDocument, max_documents: int = 50, scope: str = "acme"):
    runs = CombinedRuns(backend, max_documents, parallel=1)
    try:
        return await convert_documents(await prepare(documents, scope), runs)
    finally:
        await runs.stop()


async def test_a_chunk_of_one_template_goes_through_the_backend_once():
    backend = OnePagePerDocument()
    results = await convert([letter(n) for n in range(4)], backend)

    assert backend.runs == [4]
    assert [(r.pages, r.error) for r in results] == [(1, None)] * 4
    assert all(len(PdfReader(io.BytesIO(r.pdf)).pages) == 1 for r in results)


async def test_a_combined_run_that_fails_is_retried_one_by_one_and_only_the_bad_document_fails():
    backend = OnePagePerDocument()
    documents = [letter(0), letter(1, contract="POISON"), letter(2)]

    results = await convert(documents, backend)

    assert backend.runs == [3, 0, 0, 0]  # combined, then each alone
    assert [r.error for r in results] == [None, "General Error: the document is damaged", None]
    assert results[0].pdf and results[2].pdf and results[1].pdf is None


async def test_documents_that_cannot_be_combined_go_alone_and_batches_respect_their_size():
    backend = OnePagePerDocument()
    documents = [letter(0), b"not a docx", letter(1), letter(2)]

    results = await convert(documents, backend, max_documents=2)

    assert backend.runs == [2, 0, 1]  # letters 0 and 1 together, the broken one alone, letter 2 in its own run
    assert results[1].error == "General Error: not a document"
    assert all(r.error is None for r in (results[0], results[2], results[3]))


async def test_a_document_showing_a_picture_it_only_links_to_fails_alone_without_reaching_the_backend():
    backend = OnePagePerDocument()
    url = "http://127.0.0.1:9/logo.png"
    documents = [letter(0), linked_picture(letter(1), url), linked_picture(letter(2), url, embedded=True)]

    results = await convert(documents, backend)

    assert backend.runs == [2]  # the first and the third (its link dropped, its copy kept), combined
    assert results[1].pdf is None
    assert results[1].error.startswith("word/document.xml: relationship rIdLogoLink (image) links to " + url)
    assert results[0].error is None and results[2].error is None


def waiting_scopes(runs: CombinedRuns) -> list[object]:
    """The tenants of the chunks waiting to be taken into a run, oldest first."""
    return [waiting.key[0] for waiting in runs._waiting]


async def test_chunks_waiting_at_the_same_time_share_a_run_but_never_across_tenants():
    backend = OnePagePerDocument()
    runs = CombinedRuns(backend, max_documents=50, parallel=1)
    backend.hold.clear()  # the first chunk's run holds LibreOffice while the others arrive
    try:
        first = asyncio.create_task(convert_documents(await prepare([letter(0), letter(1)], "acme"), runs))
        # Wait on the state, not the clock: the first chunk's run in the backend, then the others queued; the
        # first of them to arrive is combined beside the run (another tenant's: a run of its own either way).
        await wait_until(lambda: backend.entered == 1, timeout=10, interval=0.01)
        others = []
        for n, tenant in ((8, "initech"), (2, "acme"), (4, "acme"), (6, "globex")):
            # one at a time, so they queue in this order
            others.append(
                asyncio.create_task(convert_documents(await prepare([letter(n), letter(n + 1)], tenant), runs))
            )
        await wait_until(lambda: waiting_scopes(runs) == ["acme", "acme", "globex"], timeout=10, interval=0.01)
        backend.hold.set()
        results = [await first, *[await task for task in others]]
    finally:
        await runs.stop()

    assert backend.runs == [2, 2, 4, 2]  # acme's two waiting chunks in one run, globex's in its own
    assert all(r.error is None and r.pages == 1 for chunk in results for r in chunk)


class OneRunAtATime(OnePagePerDocument):
    """Lays out a run only when the test lets it through, and says which runs are in it."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0
        self.tokens: asyncio.Queue[None] = asyncio.Queue()

    async def convert(self, docx: bytes, *, retry: bool = True) -> bytes:
        self.started += 1
        await self.tokens.get()
        return await super().convert(docx, retry=retry)


async def test_the_next_run_is_combined_while_the_backend_lays_out_the_current_one():
    backend = OneRunAtATime()
    runs = CombinedRuns(backend, max_documents=50, parallel=1)
    try:
        first = asyncio.create_task(convert_documents(await prepare([letter(0), letter(1)], "acme"), runs))
        await wait_until(lambda: backend.started == 1, timeout=10, interval=0.01)
        second = asyncio.create_task(convert_documents(await prepare([letter(2)], "b"), runs))
        third = asyncio.create_task(convert_documents(await prepare([letter(3)], "c"), runs))
        # Arriving while the first run is in the backend, the second is taken to be combined at once, not after
        # the run; the third waits for the second run to start.
        await wait_until(lambda: waiting_scopes(runs) == ["c"] and backend.started == 1, timeout=10, interval=0.01)
        backend.tokens.put_nowait(None)
        # While the second run is in the backend, the third has been taken to be combined: no longer waiting.
        await wait_until(lambda: backend.started == 2 and not runs._waiting, timeout=10, interval=0.01)
        backend.tokens.put_nowait(None)
        backend.tokens.put_nowait(None)
        results = [*await first, *await second, *await third]
    finally:
        await runs.stop()

    assert backend.runs == [2, 1, 1]
    assert all(r.error is None and r.pages == 1 for r in results)


async def test_stopping_cancels_the_chunks_of_the_run_in_the_backend_and_of_the_one_combined_next():
    backend = OneRunAtATime()
    runs = CombinedRuns(backend, max_documents=50, parallel=1)
    first = asyncio.create_task(convert_documents(await prepare([letter(0)], "acme"), runs))
    await wait_until(lambda: backend.started == 1, timeout=10, interval=0.01)
    later = [
        asyncio.create_task(convert_documents(await prepare([letter(n)], tenant), runs))
        for n, tenant in ((2, "b"), (3, "c"))
    ]
    await wait_until(lambda: waiting_scopes(runs) == ["c"], timeout=10, interval=0.01)  # "b" taken to be combined
    backend.tokens.put_nowait(None)
    await wait_until(lambda: backend.started == 2 and not runs._waiting, timeout=10, interval=0.01)

    await runs.stop()

    _, pending = await asyncio.wait(later, timeout=10)
    assert not pending and all(task.cancelled() for task in later)
    assert [r.pages for r in await first] == [1]  # its run was done before the stop
