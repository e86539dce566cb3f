"""A combined chunk's PDF cut back into one PDF per document, at the pages its markers point to.

LibreOffice writes a plain PDF: one cross-reference table, one flat page tree,
named destinations in the catalog's /Dests. Such a PDF is cut by copying each
document's objects as they are, renumbered, without parsing their content
(pypdf's page-by-page writer costs more than a millisecond per document, on
the core LibreOffice's next run needs). Anything else goes through pypdf.
"""

import io
import re

from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError

from .combine import MARKER_PREFIX, marker
from .domain import PageMapMismatch, UnreadablePdf, page_map

KEPT_METADATA = ("/Producer", "/Creator", "/CreationDate", "/ModDate")
# Page attributes a page may take from the page tree instead of holding them.
INHERITED = (b"Resources", b"MediaBox", b"CropBox", b"Rotate")


def split_pdf_by_destinations(pdf: bytes, documents: int) -> list[tuple[bytes, int]]:
    """(PDF, page count) of each of the `documents` combined in `pdf`, in order.

    Each document's start page is the page of its marker's named destination;
    it ends where the next one starts (see domain.page_map for what is refused).
    """
    try:
        return _PlainPdf(pdf).split(documents)
    except PageMapMismatch:
        raise
    except (_NotPlain, ValueError, KeyError, IndexError):  # laid out otherwise: pypdf reads it
        return _split_with_pypdf(pdf, documents)


def _split_with_pypdf(pdf: bytes, documents: int) -> list[tuple[bytes, int]]:
    try:
        reader = PdfReader(io.BytesIO(pdf))
        destinations = {name.lstrip("/"): dest for name, dest in reader.named_destinations.items()}
        starts = [
            reader.get_destination_page_number(destinations[marker(i)]) if marker(i) in destinations else None
            for i in range(documents)
        ]
        parts = []
        for pages in page_map(starts, len(reader.pages)):
            writer = PdfWriter()
            for number in pages:
                writer.add_page(reader.pages[number])
            if reader.metadata:  # what made the PDF, not the first document's title
                writer.add_metadata({key: value for key, value in reader.metadata.items() if key in KEPT_METADATA})
            out = io.BytesIO()
            writer.write(out)
            parts.append((out.getvalue(), len(pages)))
    except PageMapMismatch:
        raise
    except (PdfReadError, ValueError, KeyError) as exc:
        raise UnreadablePdf(f"LibreOffice produced an unreadable PDF: {exc}") from exc
    return parts


class _NotPlain(Exception):
    """Not laid out as LibreOffice writes it: cut it with pypdf."""


# In an object: dictionary brackets, the start of a literal string, hex strings, comments,
# references, and the end of the object.
_TOKEN = re.compile(rb"<<|>>|\(|<[0-9A-Fa-f\s]*>|%[^\r\n]*|(\d+)\s+(\d+)\s+R(?![A-Za-z])|endobj|stream\r?\n")
_OBJECT_HEADER = re.compile(rb"\s*(\d+)\s+(\d+)\s+obj\b")
_XREF_SUBSECTION = re.compile(rb"(\d+)\s+(\d+)\s*[\r\n]+")
_XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])")
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_SIMPLE_VALUE = re.compile(rb"\d+\s+\d+\s+R|/[^\s/<>\[\]()]+|[-+.\d]+|\[[^\]]*\]")
_STRING_SPECIAL = re.compile(rb"[()\\]")


class _Object:
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
            raise _NotPlain(f"/{name.decode()} holds more than a reference, a name, a number or an array")
        return value.group(0)


class _PlainPdf:
    def __init__(self, pdf: bytes) -> None:
        self.pdf = pdf
        self.offsets, trailer = self._xref()
        if re.search(rb"/(Encrypt|Prev|XRefStm)\b", trailer):
            raise _NotPlain("encrypted or updated")
        self.root = self._reference(trailer, b"Root")
        self.info = self._reference(trailer, b"Info", required=False)
        self._objects: dict[int, _Object] = {}

    def split(self, documents: int) -> list[tuple[bytes, int]]:
        catalog = self.object(self.root)
        tree = self._reference(catalog.text, b"Pages")
        pages = self._pages(tree)
        index = {number: position for position, number in enumerate(pages)}
        starts = self._destinations(catalog)
        ranges = page_map([index.get(starts.get(marker(i), -1)) for i in range(documents)], len(pages))
        metadata = self._metadata()
        inherited = b"".join(
            b"/" + name + b" " + value for name in INHERITED if (value := self.object(tree).value(name))
        )
        page_set = set(pages)
        return [
            (self._document([pages[n] for n in document], tree, inherited, metadata, page_set), len(document))
            for document in ranges
        ]

    # --- reading ---

    def _xref(self) -> tuple[dict[int, int], bytes]:
        end = _STARTXREF.search(self.pdf, max(0, len(self.pdf) - 1024))
        if end is None:
            raise _NotPlain("no startxref")
        position = int(end.group(1))
        if self.pdf[position : position + 4] != b"xref":
            raise _NotPlain("a cross-reference stream")
        position = _skip_space(self.pdf, position + 4)
        offsets: dict[int, int] = {}
        while (subsection := _XREF_SUBSECTION.match(self.pdf, position)) is not None:
            first, count = int(subsection.group(1)), int(subsection.group(2))
            position = subsection.end()
            for number in range(first, first + count):
                entry = _XREF_ENTRY.match(self.pdf, position)
                if entry is None:
                    raise _NotPlain("a damaged cross-reference table")
                if entry.group(3) == b"n":
                    offsets[number] = int(entry.group(1))
                position = _skip_space(self.pdf, entry.end())
        trailer = self.pdf.find(b"trailer", position)
        if trailer < 0 or not offsets:
            raise _NotPlain("no trailer")
        return offsets, self.pdf[trailer : end.start()]

    def object(self, number: int) -> _Object:
        if number not in self._objects:
            self._objects[number] = self._read(number)
        return self._objects[number]

    def _read(self, number: int) -> _Object:
        offset = self.offsets.get(number)
        header = None if offset is None else _OBJECT_HEADER.match(self.pdf, offset)
        if header is None or int(header.group(1)) != number:
            raise _NotPlain(f"object {number} is not where the table says")
        start = _skip_space(self.pdf, header.end())
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
                position = _string_end(self.pdf, position)
            elif kind == b"endobj":
                return _Object(self.pdf[start : token.start()].rstrip(), references, None)
            elif kind.startswith(b"stream") and depth == 0:
                text = self.pdf[start : token.start()].rstrip()
                return _Object(text, references, self._stream(text, position))
        raise _NotPlain(f"object {number} does not end")

    def _stream(self, text: bytes, data: int) -> bytes:
        """The stream data starting at `data`, as long as its dictionary (`text`) says."""
        length = re.search(rb"/Length\s+(\d+)(\s+\d+\s+R)?", text)
        if length is None:
            raise _NotPlain("a stream without a length")
        size = int(length.group(1))
        if length.group(2):
            size = int(self.object(size).text)
        if not self.pdf.startswith(b"endstream", _skip_space(self.pdf, data + size)):
            raise _NotPlain("a stream length that does not match")
        return self.pdf[data : data + size]

    def _reference(self, text: bytes, key: bytes, *, required: bool = True) -> int:
        found = re.search(rb"/" + key + rb"\s+(\d+)\s+\d+\s+R", text)
        if found is None:
            if required:
                raise _NotPlain(f"no /{key.decode()}")
            return 0
        return int(found.group(1))

    def _pages(self, tree: int) -> list[int]:
        node = self.object(tree)
        kids = _kids(node.text)
        if any(self.object(kid).value(b"Type") != b"/Page" for kid in kids):
            raise _NotPlain("a page tree of several levels")
        count = node.value(b"Count")
        if count is None or int(count) != len(kids):
            raise _NotPlain("a page count that does not match the pages")
        return kids

    def _destinations(self, catalog: _Object) -> dict[str, int]:
        names = self._reference(catalog.text, b"Dests", required=False)
        if not names:
            raise _NotPlain("named destinations elsewhere than in /Dests")
        pattern = rb"/(" + MARKER_PREFIX.encode() + rb"\d+)\s*\[\s*(\d+)\s+\d+\s+R"
        return {name.decode(): int(page) for name, page in re.findall(pattern, self.object(names).text)}

    def _metadata(self) -> bytes:
        if not self.info:
            return b""
        text = self.object(self.info).text
        kept = []
        for key in KEPT_METADATA:
            found = re.search(re.escape(key.encode()) + rb"\s*(<[0-9A-Fa-f\s]*>|\()", text)
            if found is not None:
                value_end = found.end() if found.group(1) != b"(" else _string_end(text, found.end())
                kept.append(key.encode() + text[found.start(1) : value_end])
        return b"".join(kept)

    # --- writing ---

    def _document(self, pages: list[int], tree: int, inherited: bytes, metadata: bytes, all_pages: set[int]) -> bytes:
        order = self._closure(pages, tree, all_pages)
        numbers = {old: new for new, old in enumerate(order, start=1)}
        pages_number = len(order) + 1
        numbers[tree] = pages_number
        out = io.BytesIO()
        out.write(self.pdf[: self.pdf.find(b"\n") + 1] + b"%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for old in order:
            offsets.append(out.tell())
            obj = self.object(old)
            out.write(b"%d 0 obj\n" % numbers[old])
            out.write(_renumbered(obj, numbers))
            if obj.stream is not None:
                out.write(b"\nstream\n")
                out.write(obj.stream)
                out.write(b"\nendstream")
            out.write(b"\nendobj\n")
        kids = b" ".join(b"%d 0 R" % numbers[page] for page in pages)
        trailing = [
            b"<</Type/Pages/Kids[%s]/Count %d%s>>" % (kids, len(pages), _renumbered_text(inherited, numbers)),
            b"<</Type/Catalog/Pages %d 0 R>>" % pages_number,
        ]
        if metadata:
            trailing.append(b"<<" + metadata + b">>")
        for number, text in enumerate(trailing, start=pages_number):
            offsets.append(out.tell())
            out.write(b"%d 0 obj\n%s\nendobj\n" % (number, text))
        size = len(offsets) + 1
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
        out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
        info = b"/Info %d 0 R" % (pages_number + 2) if metadata else b""
        out.write(
            b"trailer\n<</Size %d/Root %d 0 R%s>>\nstartxref\n%d\n%%%%EOF\n" % (size, pages_number + 1, info, xref)
        )
        return out.getvalue()

    def _closure(self, pages: list[int], tree: int, all_pages: set[int]) -> list[int]:
        """The document's objects: its pages and all they reference, except the page tree and other pages."""
        inherited_references = [number for _, _, number in self.object(tree).references if number not in all_pages]
        order: list[int] = []
        seen = {tree}
        pending = [*reversed(pages), *inherited_references]
        while pending:
            number = pending.pop()
            if number in seen:
                continue
            seen.add(number)
            if number in all_pages and number not in pages:
                raise _NotPlain("a page that refers to another document's page")
            order.append(number)
            pending.extend(reference for _, _, reference in self.object(number).references if reference not in seen)
        return order


def _kids(text: bytes) -> list[int]:
    kids = re.search(rb"/Kids\s*\[([^\]]*)\]", text)
    if kids is None:
        raise _NotPlain("a page tree without kids")
    return [int(number) for number in re.findall(rb"(\d+)\s+\d+\s+R", kids.group(1))]


def _renumbered(obj: _Object, numbers: dict[int, int]) -> bytes:
    pieces, position = [], 0
    for start, end, number in obj.references:
        if number not in numbers:
            raise _NotPlain(f"a reference to object {number}, which is not copied")
        pieces.append(obj.text[position:start])
        pieces.append(b"%d 0 R" % numbers[number])
        position = end
    pieces.append(obj.text[position:])
    return b"".join(pieces)


def _renumbered_text(text: bytes, numbers: dict[int, int]) -> bytes:
    return re.sub(rb"(\d+)\s+\d+\s+R", lambda found: b"%d 0 R" % numbers[int(found.group(1))], text)


def _string_end(data: bytes, position: int) -> int:
    """Where a literal string that opened just before `position` ends (nested brackets, escapes)."""
    depth = 1
    while depth:
        found = _STRING_SPECIAL.search(data, position)
        if found is None:
            raise _NotPlain("a string that does not end")
        character = found.group(0)
        position = found.end() + (1 if character == b"\\" else 0)
        depth += {b"(": 1, b")": -1}.get(character, 0)
    return position


def _skip_space(data: bytes, position: int) -> int:
    while data[position : position + 1] in (b"\r", b"\n", b" "):
        position += 1
    return position
