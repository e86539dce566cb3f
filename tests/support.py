"""Helpers for tests: waiting on an eventual outcome, and listening to the bus as an outside system would."""

import asyncio
import io
import json
import warnings
from collections.abc import Callable
from typing import Any, Self, TypeVar

import aio_pika
from publipost_contracts import Event
from publipost_render_pdf.combine import marker
from pypdf import PdfReader, PdfWriter

E = TypeVar("E", bound=Event)


async def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll `predicate` (sync or async) until it returns a truthy value; fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


class EventTap:
    """Binds a private queue to the events exchange and collects the events of the given types."""

    def __init__(self, rabbitmq_url: str, namespace: str, *event_types: type[Event]) -> None:
        self._url = rabbitmq_url
        self._exchange = f"{namespace}.events"
        self._types = {cls.routing_key: cls for cls in event_types}
        self.received: list[Event] = []
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._connection = await aio_pika.connect_robust(self._url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(self._exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        for routing_key in self._types:
            await queue.bind(exchange, routing_key=routing_key)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        body = json.loads(message.body)
        self.received.append(self._types[body["type"]].model_validate(body))
        self._arrived.set()

    def of(self, event_type: type[E]) -> list[E]:
        """Events of that type, each id once (copies of a re-published event count once)."""
        unique: dict[Any, E] = {}
        for event in self.received:
            if isinstance(event, event_type):
                unique.setdefault(event.event_id, event)
        return list(unique.values())

    async def next(self, event_type: type[E], where: Callable[[E], bool] = lambda e: True, timeout: float = 30) -> E:
        async def found() -> E | None:
            return next((e for e in self.of(event_type) if where(e)), None)

        return await wait_until(found, timeout=timeout, interval=0.05)

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()


def sample_record(n: int, **overrides: object) -> dict[str, object]:
    """A record with every field of samples/letter.docx; names never contain one another (Client Number1, ...12)."""
    return {
        "id": f"r{n}",
        "name": f"Client Number{n}",
        "customer_number": f"C{n:04d}",
        "document_number": f"INV-{n:04d}",
        "email": f"client{n}@example.test",
        "address": "1 rue de la Paix",
        "postal_code": "75002",
        "city": "Paris",
        "contract": f"CT-{n}",
        "premium": 100,
        "tax": 20,
        "amount_due": 120,
        "branch": "Lyon",
        **overrides,
    }


class TcpProxy:
    """A TCP relay to a real server that a test can cut and restore: the server "goes down" for the
    services behind the proxy only, without touching the broker or database other tests use."""

    def __init__(self, target: str, port: int = 0) -> None:
        host, _, target_port = target.rpartition(":")
        self._target = (host, int(target_port))
        self._links: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.up = True
        self.port = port  # 0: any free one, known once entered
        self.accepted = 0  # connections relayed since the start

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()

    def cut(self) -> None:
        self.up = False
        for writer in list(self._links):
            writer.close()

    def restore(self) -> None:
        self.up = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if not self.up:
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._links.update((writer, upstream_writer))
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            self._links.discard(writer)


def pypdf_made_pdf(pages: int, starts: dict[int, int]) -> bytes:
    """Blank pages made by pypdf, each document's marker a destination in a name tree (not LibreOffice's
    plain layout): the input the splitter reads through pypdf."""
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
    `link` (page, target page) puts a link annotation on a page that points at another page.
    Documents start at the pages of `starts` (document → page), marked as render-pdf marks them."""
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


def read_strictly(pdf: bytes) -> PdfReader:
    """The PDF read by pypdf in strict mode, every object: anything pypdf has to repair fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader = PdfReader(io.BytesIO(pdf), strict=True)
        for number in range(1, reader.trailer["/Size"]):
            reader.get_object(number)
    return reader
