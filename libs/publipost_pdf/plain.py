import io
import re
from collections.abc import Sequence

from pypdf import PdfReader, PdfWriter

KEPT_METADATA = ("/Producer", "/Creator", "/CreationDate", "/ModDate")
# Page attributes a page may take from the page tree instead of holding them.
INHERITED = (b"Resources", b"MediaBox", b"CropBox", b"Rotate")


class NotPlain(Exception):
    """Not laid out as LibreOffice writes it: go through pypdf."""


# In an object: dictionary brackets, the start of a literal string, hex strings, comments,
# references, and the end of the object.
_TOKEN = re.compile(rb"<<|>>|\(|<[0-9A-Fa-f\s]*>|%[^\r\n]*|(\d+)\s+(\d+)\s+R(?![A-Za-z])|endobj|stream\r?\n")
_OBJECT_HEADER = re.compile(rb"\s*(\d+)\s+(\d+)\s+obj\b")
_XREF_SUBSECTION = re.compile(rb"(\d+)\s+(\d+)\s*[\r\n]+")
_XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])")
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_SIMPLE_VALUE = re.compile(rb"\d+\s+\d+\s+R|/[^\s/<>\[\]()]+|[-+.\d]+|\[[^\]]*\]")
_STRING_SPECIAL = re.compile(rb"[()\\]")


class PdfObject:
    """An object's text up to its stream (references found in it), and its stream data, as read."""

    def __init__(self, text: bytes, references: list[tuple[int, int, int]], stream: bytes | None) -> None:
        self.text, self.references, self.stream = text, references, stream

    def value(self, name: bytes) -> bytes | None:
        """A dictionary key's value when it is a reference, a name, a number or an array; None if absent."""
        found = re.search(rb"/" + name + rb"(?![A-Za-z0-9#])\s*", self.text)
        if found is None:
            return None
        value = _SIMPLE_VALUE.match(self.text, found.end())
        if value is None:
            raise NotPlain(f"/{name.decode()} holds more than a reference, a name, a number or an array")
        return value.group(0)


class PlainPdf:
    """A plain PDF read lazily: its cross-reference table at once, each object when asked for."""

    def __init__(self, pdf: bytes) -> None:
        self.pdf = pdf
        self.offsets, trailer = self._xref()
        if re.search(rb"/(Encrypt|Prev|XRefStm)\b", trailer):
            raise NotPlain("encrypted or updated")
        self.root = reference(trailer, b"Root")
        self.info = reference(trailer, b"Info", required=False)
        self._objects: dict[int, PdfObject] = {}
        self.tree = reference(self.object(self.root).text, b"Pages")
        self.pages = self._pages()

    @property
    def catalog(self) -> PdfObject:
        return self.object(self.root)

    def object(self, number: int) -> PdfObject:
        if number not in self._objects:
            self._objects[number] = self._read(number)
        return self._objects[number]

    def inherited(self) -> bytes:
        """The page attributes the page tree holds for its pages."""
        tree = self.object(self.tree)
        return b"".join(b"/" + name + b" " + value for name in INHERITED if (value := tree.value(name)))

    def metadata(self) -> bytes:
        """What made the PDF (producer, creator, dates), never its title: a document's own, not a part's."""
        if not self.info:
            return b""
        text = self.object(self.info).text
        kept = []
        for key in KEPT_METADATA:
            found = re.search(re.escape(key.encode()) + rb"\s*(<[0-9A-Fa-f\s]*>|\()", text)
            if found is not None:
                value_end = found.end() if found.group(1) != b"(" else string_end(text, found.end())
                kept.append(key.encode() + text[found.start(1) : value_end])
        return b"".join(kept)

    def closure(self, pages: Sequence[int]) -> list[int]:
        """The objects `pages` need: the pages and all they reference, except the page tree and other pages."""
        all_pages = set(self.pages)
        inherited_references = [number for _, _, number in self.object(self.tree).references if number not in all_pages]
        order: list[int] = []
        seen = {self.tree}
        pending = [*reversed(pages), *inherited_references]
        while pending:
            number = pending.pop()
            if number in seen:
                continue
            seen.add(number)
            if number in all_pages and number not in pages:
                raise NotPlain("a page that refers to another document's page")
            order.append(number)
            pending.extend(ref for _, _, ref in self.object(number).references if ref not in seen)
        return order

    def _xref(self) -> tuple[dict[int, int], bytes]:
        end = _STARTXREF.search(self.pdf, max(0, len(self.pdf) - 1024))
        if end is None:
            raise NotPlain("no startxref")
        position = int(end.group(1))
        if self.pdf[position : position + 4] != b"xref":
            raise NotPlain("a cross-reference stream")
        position = skip_space(self.pdf, position + 4)
        offsets: dict[int, int] = {}
        while (subsection := _XREF_SUBSECTION.match(self.pdf, position)) is not None:
            first, count = int(subsection.group(1)), int(subsection.group(2))
            position = subsection.end()
            for number in range(first, first + count):
                entry = _XREF_ENTRY.match(self.pdf, position)
                if entry is None:
                    raise NotPlain("a damaged cross-reference table")
                if entry.group(3) == b"n":
                    offsets[number] = int(entry.group(1))
                position = skip_space(self.pdf, entry.end())
        trailer = self.pdf.find(b"trailer", position)
        if trailer < 0 or not offsets:
            raise NotPlain("no trailer")
        return offsets, self.pdf[trailer : end.start()]

    def _read(self, number: int) -> PdfObject:
        offset = self.offsets.get(number)
        header = None if offset is None else _OBJECT_HEADER.match(self.pdf, offset)
        if header is None or int(header.group(1)) != number:
            raise NotPlain(f"object {number} is not where the table says")
        start = skip_space(self.pdf, header.end())
        references: list[tuple[int, int, int]] = []
        depth, position = 0, start
        while (token := _TOKEN.search(self.pdf, position)) is not None:
            kind = token.group(0)
            position = token.end()
            if token.group(1) is not None:
                references.append((token.start() - start, token.end() - start, int(token.group(1))))
            elif kind == b"<<":
                depth += 1
            elif kind == b">>":
                depth -= 1
            elif kind == b"(":
                position = string_end(self.pdf, position)
            elif kind == b"endobj":
                return PdfObject(self.pdf[start : token.start()].rstrip(), references, None)
            elif kind.startswith(b"stream") and depth == 0:
                text = self.pdf[start : token.start()].rstrip()
                return PdfObject(text, references, self._stream(text, position))
        raise NotPlain(f"object {number} does not end")

    def _stream(self, text: bytes, data: int) -> bytes:
        """The stream data starting at `data`, as long as its dictionary (`text`) says."""
        length = re.search(rb"/Length\s+(\d+)(\s+\d+\s+R)?", text)
        if length is None:
            raise NotPlain("a stream without a length")
        size = int(length.group(1))
        if length.group(2):
            size = int(self.object(size).text)
        if not self.pdf.startswith(b"endstream", skip_space(self.pdf, data + size)):
            raise NotPlain("a stream length that does not match")
        return self.pdf[data : data + size]

    def _pages(self) -> list[int]:
        node = self.object(self.tree)
        kids = _kids(node.text)
        if any(self.object(kid).value(b"Type") != b"/Page" for kid in kids):
            raise NotPlain("a page tree of several levels")
        count = node.value(b"Count")
        if count is None or int(count) != len(kids):
            raise NotPlain("a page count that does not match the pages")
        return kids


class PdfAssembler:
    """A new PDF made of pages of plain PDFs, each copied with the objects it uses.

    The pages taken from one source share a page-tree node that holds what that source's tree gave its
    pages (resources, media box); with a single source, that node is the root, as LibreOffice writes it.
    """

    def __init__(self, header: bytes = b"%PDF-1.6") -> None:
        self._out = io.BytesIO()
        self._out.write(header + b"\n%\xe2\xe3\xcf\xd3\n")
        self._offsets: dict[int, int] = {}
        self._next = 1
        self._nodes: list[tuple[int, list[int], bytes]] = []  # (node number, its pages' numbers, inherited)
        self.pages = 0

    def add(self, source: PlainPdf, pages: Sequence[int]) -> None:
        order = source.closure(pages)
        numbers = {old: self._next + n for n, old in enumerate(order)}
        node = numbers[source.tree] = self._next + len(order)
        self._next = node + 1
        for old in order:
            obj = source.object(old)
            self._object(numbers[old], renumbered(obj, numbers), obj.stream)
        self._nodes.append((node, [numbers[page] for page in pages], renumbered_text(source.inherited(), numbers)))
        self.pages += len(pages)

    def finish(self, metadata: bytes = b"") -> bytes:
        if len(self._nodes) == 1:
            node, kids, inherited = self._nodes[0]
            root = node
            self._object(node, _tree(kids, len(kids), inherited, parent=None))
        else:
            root = self._next
            self._next += 1
            for node, kids, inherited in self._nodes:
                self._object(node, _tree(kids, len(kids), inherited, parent=root))
            self._object(root, _tree([node for node, _, _ in self._nodes], self.pages, b"", parent=None))
        catalog = self._next
        self._object(catalog, b"<</Type/Catalog/Pages %d 0 R>>" % root)
        info = b""
        if metadata:
            self._object(catalog + 1, b"<<" + metadata + b">>")
            info = b"/Info %d 0 R" % (catalog + 1)
        out = self._out
        size = max(self._offsets) + 1
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
        out.write(b"".join(b"%010d 00000 n \n" % self._offsets[number] for number in range(1, size)))
        out.write(b"trailer\n<</Size %d/Root %d 0 R%s>>\nstartxref\n%d\n%%%%EOF\n" % (size, catalog, info, xref))
        return out.getvalue()

    def _object(self, number: int, text: bytes, stream: bytes | None = None) -> None:
        self._offsets[number] = self._out.tell()
        self._out.write(b"%d 0 obj\n" % number)
        self._out.write(text)
        if stream is not None:
            self._out.write(b"\nstream\n")
            self._out.write(stream)
            self._out.write(b"\nendstream")
        self._out.write(b"\nendobj\n")


def join_pdfs(pdfs: Sequence[bytes]) -> tuple[bytes, int]:
    """The PDFs one after the other, print-ready; with the page count. Plain PDFs are joined object by
    object (a thousand one-page letters in a fraction of pypdf's time), any other set through pypdf."""
    try:
        sources = [PlainPdf(pdf) for pdf in pdfs]
        assembler = PdfAssembler(pdfs[0][: pdfs[0].find(b"\n")].rstrip())
        for source in sources:
            assembler.add(source, source.pages)
        return assembler.finish(sources[0].metadata()), assembler.pages
    except (NotPlain, ValueError, KeyError, IndexError):
        writer = PdfWriter()
        for pdf in pdfs:
            writer.append(PdfReader(io.BytesIO(pdf)))
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue(), len(writer.pages)


def reference(text: bytes, key: bytes, *, required: bool = True) -> int:
    found = re.search(rb"/" + key + rb"\s+(\d+)\s+\d+\s+R", text)
    if found is None:
        if required:
            raise NotPlain(f"no /{key.decode()}")
        return 0
    return int(found.group(1))


def _tree(kids: list[int], count: int, inherited: bytes, parent: int | None) -> bytes:
    references = b" ".join(b"%d 0 R" % kid for kid in kids)
    up = b"/Parent %d 0 R" % parent if parent is not None else b""
    return b"<</Type/Pages%s/Kids[%s]/Count %d%s>>" % (up, references, count, inherited)


def _kids(text: bytes) -> list[int]:
    kids = re.search(rb"/Kids\s*\[([^\]]*)\]", text)
    if kids is None:
        raise NotPlain("a page tree without kids")
    return [int(number) for number in re.findall(rb"(\d+)\s+\d+\s+R", kids.group(1))]


def renumbered(obj: PdfObject, numbers: dict[int, int]) -> bytes:
    pieces, position = [], 0
    for start, end, number in obj.references:
        if number not in numbers:
            raise NotPlain(f"a reference to object {number}, which is not copied")
        pieces.append(obj.text[position:start])
        pieces.append(b"%d 0 R" % numbers[number])
        position = end
    pieces.append(obj.text[position:])
    return b"".join(pieces)


def renumbered_text(text: bytes, numbers: dict[int, int]) -> bytes:
    return re.sub(rb"(\d+)\s+\d+\s+R", lambda found: b"%d 0 R" % numbers[int(found.group(1))], text)


def string_end(data: bytes, position: int) -> int:
    """Where a literal string that opened just before `position` ends (nested brackets, escapes)."""
    depth = 1
    while depth:
        found = _STRING_SPECIAL.search(data, position)
        if found is None:
            raise NotPlain("a string that does not end")
        character = found.group(0)
        position = found.end() + (1 if character == b"\\" else 0)
        depth += {b"(": 1, b")": -1}.get(character, 0)
    return position


def skip_space(data: bytes, position: int) -> int:
    while data[position : position + 1] in (b"\r", b"\n", b" "):
        position += 1
    return position
