"""Is this upload a Word document we may open? Decided from the zip's central directory, before anything
is decompressed, so a zip bomb is refused for the sizes it declares rather than discovered by inflating it.

Python's zipfile never inflates an entry past the size the central directory declares (it stops and the
CRC check fails), so checking the declared sizes bounds what opening the document later can cost.
"""

import io
import zipfile
import zlib
from dataclasses import dataclass

from lxml import etree

from .domain import TemplateRejected

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAIN_PART = "word/document.xml"
_DOCUMENT_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_REFUSED_TYPES = {
    "application/vnd.ms-word.document.macroEnabled.main+xml": "a macro-enabled document (.docm)",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml": "a Word template (.dotx)",
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml": "a macro-enabled Word template (.dotm)",
}
# Small parts may compress very well (blank table rows, repeated styles) without being any danger.
RATIO_FLOOR_BYTES = 1 << 20


@dataclass(frozen=True)
class PackageLimits:
    max_bytes: int
    max_uncompressed_bytes: int
    max_entries: int
    max_ratio: float


def check_package(data: bytes, limits: PackageLimits) -> None:
    """Refuse, naming the rule, anything that is not a plain DOCX within the limits."""
    if len(data) > limits.max_bytes:
        raise TemplateRejected("file", f"the file is over the {limits.max_bytes}-byte limit", limit=limits.max_bytes)
    if data.startswith(_OLE_MAGIC):
        raise TemplateRejected(
            "file", "not a DOCX file: a legacy .doc or a password-protected document; save it as an unprotected .docx"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise TemplateRejected("file", f"not a DOCX file (not a zip archive: {exc})") from exc
    with archive:
        entries = archive.infolist()
        _check_sizes(entries, limits)
        names = {entry.filename for entry in entries}
        if _MAIN_PART not in names or "[Content_Types].xml" not in names:
            raise TemplateRejected("file", f"not a DOCX file (no {_MAIN_PART} or [Content_Types].xml)")
        if any(entry.flag_bits & 0x1 for entry in entries):
            raise TemplateRejected("file", "the document is encrypted; save it without a password")
        # Every XML part once through the guarded parser, so what parses it later (python-docx, docxtpl, the
        # merge renderer) never meets a DTD; the sizes checked above bound what this reads.
        for name in sorted(names):
            if name.endswith((".xml", ".rels")):
                parse_part(_read(archive, name), name)
        main_type = _content_type_of(archive, "/" + _MAIN_PART)
    if main_type in _REFUSED_TYPES:
        raise TemplateRejected("file", f"{_REFUSED_TYPES[main_type]} is not accepted; save it as a .docx document")
    if main_type != _DOCUMENT_TYPE:
        raise TemplateRejected("file", f"not a DOCX file (its main part is {main_type or 'untyped'})")


def _check_sizes(entries: list[zipfile.ZipInfo], limits: PackageLimits) -> None:
    if len(entries) > limits.max_entries:
        raise TemplateRejected(
            "file", f"{len(entries)} entries in the archive; at most {limits.max_entries}", limit=limits.max_entries
        )
    total = sum(entry.file_size for entry in entries)
    if total > limits.max_uncompressed_bytes:
        raise TemplateRejected(
            "file",
            f"{total} bytes once decompressed; at most {limits.max_uncompressed_bytes}",
            limit=limits.max_uncompressed_bytes,
        )
    for entry in entries:
        if entry.file_size < RATIO_FLOOR_BYTES:
            continue
        ratio = entry.file_size / max(entry.compress_size, 1)
        if ratio > limits.max_ratio:
            raise TemplateRejected(
                "file",
                f"entry {entry.filename!r} compresses {ratio:.0f}:1, over the {limits.max_ratio:g}:1 limit",
                entry=entry.filename,
                limit=limits.max_ratio,
            )


def _read(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError) as exc:
        raise TemplateRejected("file", f"part {name} of the document cannot be read: {exc}", part=name) from exc


def parse_part(xml: bytes, part_name: str) -> etree._Element:
    """An XML part of the upload, parsed as defusedxml would: no entity expanded, nothing fetched, and a part
    that declares a DTD (where entity bombs and external entities live; a DOCX part never has one) refused,
    like a part that is not XML, with a 422 naming the part."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)  # one per call: not thread-safe
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        message = f"part {part_name} of the document is not well-formed XML: {str(exc)[:200]}"
        raise TemplateRejected("file", message, part=part_name) from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        message = f"part {part_name} of the document declares a DTD or entities (<!DOCTYPE>), which a DOCX never has"
        raise TemplateRejected("file", message, part=part_name)
    return root


def overrides(root: etree._Element) -> list[etree._Element]:
    """The <Override> elements of [Content_Types].xml; comments and processing instructions are no elements."""
    return [node for node in root if isinstance(node.tag, str) and node.tag.endswith("Override")]


def _content_type_of(archive: zipfile.ZipFile, part_name: str) -> str | None:
    root = parse_part(_read(archive, "[Content_Types].xml"), "[Content_Types].xml")
    for override in overrides(root):
        if override.get("PartName", "").lower() == part_name.lower():
            return override.get("ContentType")
    return None


def part_label(part_name: str) -> str:
    """How a user calls a part of the document: body, header (header1.xml), footer (footer2.xml), footnotes."""
    base = part_name.rsplit("/", 1)[-1]
    if base == "document.xml":
        return "body"
    for kind in ("header", "footer"):
        if base.startswith(kind):
            return f"{kind} ({base})"
    return base.removesuffix(".xml")
