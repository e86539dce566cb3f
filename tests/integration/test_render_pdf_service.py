"""render-pdf against the real broker, database and LibreOffice."""

import asyncio
import http.server
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from publipost_bus import Bus
from publipost_contracts import DocumentsRendered, RenderItem, RenderRequested
from publipost_merge.rendering import render_docx
from publipost_render_pdf.app import build
from publipost_render_pdf.domain import page_count, pdf_blob_id
from publipost_render_pdf.libreoffice import LibreOfficePool, WorkerConfig
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_settings import ServiceSettings
from pypdf import PdfReader

from tests.credentials import credentials
from tests.gotenberg_standin import GotenbergStandIn
from tests.support import EventTap, sample_record, wait_until
from tests.unit.test_render_external_links import PNG, linked_picture

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PAGE_FIELD = '<w:t xml:space="preserve"> · page </w:t></w:r><w:fldSimple w:instr=" PAGE "><w:r><w:t>1</w:t></w:r></w:fldSimple><w:r><w:t></w:t>'


def letter(n: int, **overrides: object) -> bytes:
    return render_docx(SAMPLE.read_bytes(), sample_record(n, name=f"Client Renderton{n}", **overrides))


def long_letter(n: int, words: int) -> bytes:
    """The same letter, its contract paragraph grown to fill several pages."""
    return letter(n, contract=" ".join(f"clause{i}" for i in range(words)))


def numbered_template() -> bytes:
    """samples/letter.docx with "page N" in its footer, so each page says which page of its letter it is."""
    source = zipfile.ZipFile(io.BytesIO(SAMPLE.read_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "word/footer1.xml":
                data = data.replace(
                    b"{{ document_number }}</w:t>", f"{{{{ document_number }}}}</w:t>{PAGE_FIELD}".encode()
                )
            target.writestr(name, data)
    return out.getvalue()


@pytest.fixture
async def start_render(make_settings, running, infra, namespace):
    """`await start_render(**settings)`: render-pdf running with those settings, and merge's side of the bus."""
    started: list[Rendering] = []

    async def start(**settings: object) -> Rendering:
        service = await running(build(make_settings(RenderPdfSettings, **settings)))
        merge = Bus(make_settings(ServiceSettings, service_name="merge"), publishes=[RenderRequested])
        await merge.start()
        tap = await EventTap(infra.rabbitmq_url, namespace, DocumentsRendered).__aenter__()
        started.append(Rendering(service, merge, tap))
        return started[-1]

    yield start
    for rendering in started:
        await rendering.close()


@pytest.fixture
async def render(start_render):
    return await start_render()


class Rendering:
    """A running render-pdf, merge's side of the bus, and the answers it hears."""

    def __init__(self, service, merge, tap) -> None:
        self.service, self.merge, self.tap = service, merge, tap
        self.blobs = service.components.storage.blobs
        self.libreoffice = service.components.converter

    async def request(
        self,
        documents: dict[str, bytes],
        chunk: int = 0,
        timeout: float = 120,
        tenant_id: str = "acme",
        occurred_at: datetime | None = None,
        count_only: bool = False,
    ) -> DocumentsRendered:
        items = [
            RenderItem(
                document_id=document_id,
                docx_blob_id=await self.blobs.put(docx, f"{document_id}.docx", DOCX, tenant_id=tenant_id),
            )
            for document_id, docx in documents.items()
        ]
        return await self.publish(items, chunk, timeout, tenant_id, occurred_at, count_only)

    async def publish(
        self,
        items: list[RenderItem],
        chunk: int = 0,
        timeout: float = 120,
        tenant_id: str = "acme",
        occurred_at: datetime | None = None,
        count_only: bool = False,
    ) -> DocumentsRendered:
        event = RenderRequested(
            tenant_id=tenant_id,
            correlation_id=str(uuid.uuid4()),
            mailing_id="m1",
            chunk=chunk,
            documents=items,
            occurred_at=occurred_at or datetime.now(UTC),
            count_only=count_only,
        )
        await self.merge.publish(event)
        return await self.tap.next(DocumentsRendered, lambda e: e.causation_id == str(event.event_id), timeout)

    async def pdf(self, blob_id: str) -> PdfReader:
        return PdfReader(io.BytesIO(await self.blobs.get(blob_id)))

    def http(self, tenant_id: str = "acme", *roles: str) -> httpx.AsyncClient:
        """The service's HTTP API, called by a person of that tenant (with every role unless given)."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(self.service.http_app()),
            base_url="http://r",
            headers=credentials(tenant_id, *roles),
        )

    def runs(self) -> int:
        return sum(worker["conversions"] for worker in self.libreoffice.describe())

    async def close(self) -> None:
        await self.tap.__aexit__()
        await self.merge.stop()


async def test_each_document_of_a_chunk_gets_its_pdf_with_its_own_text_and_page_count(render):
    answer = await render.request({f"d{n}": letter(n) for n in range(4)})
    async with render.http() as http:
        metrics = (await http.get("/metrics")).text

    assert [r.document_id for r in answer.results] == ["d0", "d1", "d2", "d3"]
    for n, result in enumerate(answer.results):
        assert result.error is None
        pdf = await render.pdf(result.pdf_blob_id)
        assert len(pdf.pages) == result.page_count >= 1
        text = " ".join(page.extract_text() for page in pdf.pages)
        assert f"Client Renderton{n}" in text
        assert f"INV-{n:04d}" in text
    for family in ("conversions", "conversion_seconds", "documents", "queue_wait_seconds"):
        assert f"publipost_render_{family}" in metrics
    assert 'publipost_render_conversions_total{backend="libreoffice",mode="batch"}' in metrics


async def test_a_chunk_is_laid_out_once_and_each_recipient_gets_exactly_the_pages_of_their_letter(render):
    template = numbered_template()
    documents = {
        f"p{n}": render_docx(template, sample_record(n, contract=" ".join(f"clause{i}" for i in range(1500))))
        if n == 2
        else render_docx(template, sample_record(n))
        for n in range(5)
    }
    runs = render.runs()

    answer = await render.request(documents)

    assert render.runs() == runs + 1  # the five letters went through LibreOffice as one document
    alone = [page_count(await render.libreoffice.convert(docx)) for docx in documents.values()]
    assert alone[2] >= 3 and alone.count(1) == 4
    assert [r.page_count for r in answer.results] == alone
    for n, result in enumerate(answer.results):
        pdf = await render.pdf(result.pdf_blob_id)
        assert len(pdf.pages) == alone[n]
        for number, page in enumerate(pdf.pages, start=1):
            text = page.extract_text()
            assert f"Document INV-{n:04d} · page {number}" in text  # its own footer, numbered from 1
            assert all(f"INV-{other:04d}" not in text for other in range(5) if other != n)


async def test_a_document_libreoffice_cannot_read_fails_alone_with_a_reason(render):
    answer = await render.request({"good": letter(1), "broken": b"PK\x03\x04 not really a document", "fine": letter(2)})

    results = {r.document_id: r for r in answer.results}
    assert results["good"].pdf_blob_id and results["good"].error is None
    assert results["fine"].pdf_blob_id and results["fine"].error is None
    assert results["broken"].pdf_blob_id is None
    assert results["broken"].error


async def test_a_redelivered_chunk_reuses_the_stored_pdfs_instead_of_converting_again(render):
    first = await render.request({"again": letter(7)})
    runs = render.runs()
    second = await render.request({"again": letter(7)}, chunk=1)

    assert second.results[0].pdf_blob_id == first.results[0].pdf_blob_id
    assert render.runs() == runs


async def test_one_long_lived_libreoffice_renewed_after_n_runs_and_reported_by_the_api(start_render):
    render = await start_render(restart_after=2)
    async with render.http() as http:
        before = (await http.get("/workers")).json()
        await render.request({f"a{n}": letter(n) for n in range(3)}, chunk=0)
        await render.request({f"b{n}": letter(n) for n in range(3)}, chunk=1)
        after = (await http.get("/workers")).json()
        ready = await http.get("/readyz")

    assert len(before) == 1 and before[0]["alive"]
    assert after[0]["conversions"] == 2  # two chunks, one LibreOffice run each
    assert after[0]["restarts"] == 1  # restart_after=2: renewed once, not once per document
    assert after[0]["soffice_pid"] != before[0]["soffice_pid"]
    assert ready.status_code == 200 and ready.json()["checks"]["libreoffice"] is True


async def test_libreoffice_runs_on_jemalloc_unless_told_otherwise(start_render):
    preloaded = await start_render()
    plain = await start_render(soffice_allocator="")
    async with preloaded.http() as http:
        with_jemalloc = (await http.get("/workers")).json()[0]
    async with plain.http() as http:
        with_glibc = (await http.get("/workers")).json()[0]
    answer = await preloaded.request({"j": letter(1)})

    assert with_jemalloc["allocator"] == "libjemalloc.so.2"
    assert "libjemalloc" in Path(f"/proc/{with_jemalloc['soffice_pid']}/maps").read_text()
    assert with_glibc["allocator"] == "glibc"
    assert "libjemalloc" not in Path(f"/proc/{with_glibc['soffice_pid']}/maps").read_text()
    assert answer.results[0].error is None


async def test_libreoffice_killed_in_the_middle_of_a_chunk_is_renewed_and_the_chunk_completes(start_render):
    render = await start_render(batch_size=10)  # the chunk goes through LibreOffice in six runs
    documents = {f"k{n}": long_letter(n, 1500) if n % 10 == 5 else letter(n) for n in range(60)}
    async with render.http() as http:
        before = (await http.get("/workers")).json()[0]
        answer_task = asyncio.create_task(render.request(documents, timeout=240))
        busy = await wait_until(lambda: _busy_worker(http), timeout=60, interval=0.02)
        os.kill(busy["soffice_pid"], signal.SIGKILL)
        answer = await answer_task
        after = (await http.get("/workers")).json()[0]

    assert [r.error for r in answer.results] == [None] * 60
    assert all(r.pdf_blob_id and r.page_count >= 1 for r in answer.results)
    assert after["restarts"] > before["restarts"]
    assert after["alive"] and after["soffice_pid"] != busy["soffice_pid"]


class _Counting(http.server.BaseHTTPRequestHandler):
    def handle(self) -> None:
        self.server.contacts.append(self.client_address)  # type: ignore[attr-defined]  # any method, any request
        super().handle()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def counting_server() -> Iterator[tuple[str, list[object]]]:
    """A local HTTP server serving a picture, and the connections made to it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    server.contacts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", server.contacts  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


async def test_what_a_document_links_to_is_never_fetched_and_only_a_picture_known_by_its_link_alone_fails(render):
    with counting_server() as (url, contacts):
        answer = await render.request(
            {
                "linked": linked_picture(letter(1), f"{url}/logo.png"),
                "embedded": linked_picture(letter(2), f"{url}/logo.png", embedded=True, hyperlink=f"{url}/site"),
                "plain": letter(3),
            }
        )
        await asyncio.sleep(0.5)  # a fetch still in flight would be counted

    results = {r.document_id: r for r in answer.results}
    assert contacts == []
    assert results["linked"].pdf_blob_id is None
    assert results["linked"].error.startswith(f"word/document.xml: relationship rIdLogoLink (image) links to {url}")
    assert results["plain"].error is None
    embedded = await render.pdf(results["embedded"].pdf_blob_id)
    assert len(embedded.pages[0].images) == 1  # the picture's embedded copy
    assert "our site" in embedded.pages[0].extract_text()  # its hyperlink stayed, and was not followed


async def test_libreoffice_itself_loads_nothing_a_document_links_to(render):
    with counting_server() as (url, contacts):
        pdf = await render.libreoffice.convert(linked_picture(letter(1), f"{url}/logo.png"))  # not cleaned
        await asyncio.sleep(0.5)

    assert contacts == []
    assert page_count(pdf) == 1


WORKER = """
import asyncio, sys
from pathlib import Path
from publipost_render_pdf.libreoffice import LibreOfficePool, WorkerConfig
from publipost_render_pdf.settings import RenderPdfSettings

async def main():
    pool = LibreOfficePool(1, WorkerConfig.from_settings(RenderPdfSettings()))
    await pool.start()
    print("converting", flush=True)
    await pool.convert(Path(sys.argv[1]).read_bytes())

asyncio.run(main())
"""


def _processes_of(service_pid: int) -> dict[int, str]:
    """Live processes (not zombies: they have no command line) working in that service's folders."""
    mark = f"publipost-render-{service_pid}-".encode()
    found = {}
    for entry in os.listdir("/proc"):
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if entry.isdigit() and mark in command:
            found[int(entry)] = command.replace(b"\0", b" ").decode()
    return found


def test_render_pdf_killed_in_the_middle_of_a_conversion_leaves_no_libreoffice_behind(tmp_path):
    long_document = tmp_path / "long.docx"
    long_document.write_bytes(long_letter(1, 60_000))  # laid out for well over the 5 s allowed below
    service = subprocess.Popen([sys.executable, "-c", WORKER, str(long_document)], stdout=subprocess.PIPE, text=True)
    try:
        for line in service.stdout:  # its logs, then "converting" once its LibreOffice answers
            if line == "converting\n":
                break
        time.sleep(1)
        running = _processes_of(service.pid)
        assert any("soffice.bin" in command and "-env:UserInstallation=" in command for command in running.values())

        service.kill()
        service.wait()
        deadline = time.monotonic() + 5
        while _processes_of(service.pid) and time.monotonic() < deadline:
            time.sleep(0.1)

        assert _processes_of(service.pid) == {}
    finally:
        service.kill()
        service.wait()
        for pid in _processes_of(service.pid):  # what a failure left behind
            os.kill(pid, signal.SIGKILL)
        for folder in Path(tempfile.gettempdir()).glob(f"publipost-render-{service.pid}-*"):
            shutil.rmtree(folder, ignore_errors=True)  # a killed service removes nothing


async def _busy_worker(http: httpx.AsyncClient) -> dict | None:
    worker = (await http.get("/workers")).json()[0]
    return worker if worker["busy"] and worker["soffice_pid"] else None


async def test_a_conversion_that_hangs_renews_the_worker_and_fails_only_its_document(start_render):
    render = await start_render(conversion_timeout_s=4)
    before = render.libreoffice.describe()[0]
    documents = {"small": letter(1), "endless": long_letter(2, 60_000), "other": letter(3)}
    answer = await render.request(documents, timeout=240)
    after = render.libreoffice.describe()[0]
    follow_up = await render.request({"later": letter(4)}, chunk=1)

    results = {r.document_id: r for r in answer.results}
    assert results["small"].error is None and results["other"].error is None
    assert results["endless"].pdf_blob_id is None
    assert "no answer within 4s" in results["endless"].error
    assert after["restarts"] >= before["restarts"] + 2  # the combined run, then the document alone
    assert after["alive"] and after["soffice_pid"] != before["soffice_pid"]
    assert follow_up.results[0].error is None


async def test_past_its_yearly_quota_a_tenant_s_documents_are_refused_and_usage_is_counted(render):
    async with render.http() as http:
        limit = await http.put("/quotas/acme", json={"yearly_limit": 3})
        answer = await render.request({f"q{n}": letter(n) for n in range(5)})
        quota = (await http.get("/quotas/acme")).json()
        usage = (await http.get("/usage")).json()
        later = await render.request({"q9": letter(9)}, chunk=1)
    async with render.http("globex") as http:
        other = (await http.get("/quotas/globex")).json()

    assert limit.status_code == 200
    assert [r.error is None for r in answer.results] == [True, True, True, False, False]
    assert answer.results[3].error == "conversion quota of 3 per year reached for tenant acme"
    assert later.results[0].error == "conversion quota of 3 per year reached for tenant acme"
    assert quota["conversions"] == 3 and quota["yearly_limit"] == 3 and quota["remaining"] == 0
    assert usage == quota
    assert other["conversions"] == 0 and other["yearly_limit"] is None


async def test_a_word_mailing_s_page_counts_store_no_pdf_and_take_nothing_from_the_quota(render):
    async with render.http() as http:
        await http.put("/quotas/acme", json={"yearly_limit": 1})
        answer = await render.request({f"w{n}": letter(n) for n in range(3)}, count_only=True)
        quota = (await http.get("/quotas/acme")).json()

    assert [(r.error, r.pdf_blob_id) for r in answer.results] == [(None, None)] * 3
    assert all(r.page_count >= 1 for r in answer.results)
    assert quota["conversions"] == 0
    assert not await render.blobs.exists(pdf_blob_id("w0"))


async def test_a_tenant_with_an_external_backend_is_not_bound_by_the_included_quota(render):
    async with render.http() as http:
        await http.put("/quotas/acme", json={"yearly_limit": 0})
        chosen = await http.put(
            "/backends/acme", json={"backend": "gotenberg", "gotenberg_url": "http://127.0.0.1:3000"}  # allowed in tests
        )
        quota = (await http.get("/quotas/acme")).json()
        refused = await http.put("/backends/acme", json={"backend": "gotenberg"})

    assert chosen.json()["backend"] == "gotenberg" and chosen.json()["external"] is True
    assert quota["backend"] == "gotenberg" and quota["limit_applies"] is False
    assert refused.status_code == 422  # gotenberg without a server to send to


async def test_past_its_quota_a_tenant_s_paid_converter_takes_over_until_the_year_ends(render):
    """Issue 16: a tenant with an external backend for what is over its included quota had its documents
    refused there too. Now they go to that converter, each result saying which one made its PDF, and the
    next year starts on LibreOffice again."""
    gotenberg = GotenbergStandIn()
    async with gotenberg.serving() as url, render.http() as http:
        await http.put("/quotas/acme", json={"yearly_limit": 2})
        overflow = await http.put("/backends/acme/overflow", json={"backend": "gotenberg", "gotenberg_url": url})
        answer = await render.request({f"o{n}": letter(n) for n in range(4)})
        quota = (await http.get("/quotas/acme")).json()
        next_year = await render.request({"o9": letter(9)}, chunk=1, occurred_at=datetime(2099, 1, 1, tzinfo=UTC))

    assert overflow.json()["overflow"] == {"backend": "gotenberg", "gotenberg_url": f"{url}/"}
    assert [(r.error, r.backend) for r in answer.results] == [
        (None, "libreoffice"), (None, "libreoffice"), (None, "gotenberg"), (None, "gotenberg")
    ]
    for n, result in enumerate(answer.results):
        assert f"Client Renderton{n}" in (await render.pdf(result.pdf_blob_id)).pages[0].extract_text()
    assert gotenberg.conversions >= 1
    assert (quota["conversions"], quota["remaining"], quota["past_limit"]) == (2, 0, "gotenberg")
    assert (next_year.results[0].error, next_year.results[0].backend) == (None, "libreoffice")


async def test_readiness_is_false_while_libreoffice_is_down(make_settings, running):
    service = await running(build(make_settings(RenderPdfSettings)))
    await service.components.converter.stop()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://r") as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["libreoffice"] is False


async def test_a_tenant_sets_its_own_quota_and_backend_never_anothers(render):
    """The exploits of issue 14: PUT /backends/victim redirected the victim's conversions, PUT /quotas/{tenant}
    set anyone's quota. A path naming another tenant than the caller's is now answered as if it did not exist,
    and only the tenant's admins set its own."""
    async with render.http("victim") as http:
        assert (await http.put("/quotas/victim", json={"yearly_limit": 100})).status_code == 200
        victim_before = ((await http.get("/quotas/victim")).json(), (await http.get("/backends/victim")).json())
    async with render.http("acme") as http:
        evil = {"backend": "gotenberg", "gotenberg_url": "http://evil.test"}
        redirected = await http.put("/backends/victim", json=evil)
        requota = await http.put("/quotas/victim", json={"yearly_limit": 0})
        peeked = [await http.get("/quotas/victim"), await http.get("/backends/victim")]
    async with render.http("acme", "operator", "viewer") as http:
        not_admin = [
            await http.put("/quotas/acme", json={"yearly_limit": None}),
            await http.put("/backends/acme", json={"backend": None}),
        ]
    async with render.http("victim") as http:
        victim_after = ((await http.get("/quotas/victim")).json(), (await http.get("/backends/victim")).json())

    assert (redirected.status_code, requota.status_code) == (404, 404)
    assert [r.status_code for r in peeked] == [404, 404]
    assert [r.status_code for r in not_admin] == [403, 403]
    assert victim_after == victim_before
    assert victim_after[1]["backend"] == "libreoffice" and victim_after[0]["yearly_limit"] == 100


async def test_a_chunk_naming_another_tenants_docx_converts_nothing_of_theirs(render):
    """render.requested of acme naming victim's DOCX, or a document whose PDF is victim's: nothing of theirs is
    converted, handed over or overwritten."""
    theirs = await render.request({"their-doc": letter(1)}, tenant_id="victim")
    their_pdf = theirs.results[0].pdf_blob_id
    their_docx = await render.blobs.put(letter(2), "x.docx", DOCX, tenant_id="victim")
    own_docx = await render.blobs.put(letter(3), "y.docx", DOCX, tenant_id="acme")
    answer = await render.publish(
        [
            RenderItem(document_id="stolen", docx_blob_id=their_docx),
            RenderItem(document_id="their-doc", docx_blob_id=own_docx),  # its PDF id is victim's document's
        ],
        chunk=5,
    )
    assert [r.pdf_blob_id for r in answer.results] == [None, None]
    assert all("not found" in r.error for r in answer.results)
    assert their_pdf is not None and "Client Renderton1" in (await render.pdf(their_pdf)).pages[0].extract_text()


async def test_a_libreoffice_killed_and_renewed_leaves_no_temporary_files_behind(tmp_path, monkeypatch):
    """Each soffice killed (hung, crashed, or renewed after N conversions by a kill) left its temporary
    folder (lu*.tmp) in the system's: a hundred after a day of tests, and a service's whole life of them
    in a pod's /tmp."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pool = LibreOfficePool(1, WorkerConfig.from_settings(RenderPdfSettings()))
    await pool.start()
    try:
        for n in range(3):
            await pool.convert(letter(n))
            os.kill(pool.describe()[0]["soffice_pid"], signal.SIGKILL)  # the next conversion renews it
        pdf = await pool.convert(letter(3))
    finally:
        await pool.stop()
    assert page_count(pdf) == 1
    assert list(tmp_path.iterdir()) == []
