"""Many DOCX documents as one, so LibreOffice loads styles and lays out a whole chunk in one run.

Each document keeps its own section (page size, margins, headers and footers,
page numbers from 1) and starts on a new page. A bookmark named
`marker(i)` opens document i; exported as a PDF named destination it tells on
which page each document starts (the page map).

Documents combine when their parts other than headers, footers, images and
links (styles, numbering, settings, fonts, theme, footnotes...) are identical:
the combined document keeps the first document's copy, which is then right for
all. What a body references (headers, footers, images, links) is copied per
document under `publipost/d<i>/`, or shared when byte for byte the same.

`combine_docx_with_docxcompose` is the same through the libraries (PUBLIPOST_DOCX_COMBINER=docxcompose;
docs/library-parity.md): slower, and documents whose headers or footers hold more than text go alone.
"""

import functools
import hashlib
import io
import posixpath
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from copy import deepcopy

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.section import WD_SECTION
from docx.opc.exceptions import PackageNotFoundError
from docx.section import Section
from docxcompose.composer import Composer
from lxml import etree

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
VML_OFFICE = "urn:schemas-microsoft-com:office:office"
PKG_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
CONTENT_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
OFFICE_DOCUMENT = f"{R}/officeDocument"
HEADER, FOOTER = f"{R}/header", f"{R}/footer"
# Parts each document has its own of; a combined document carries every document's copy.
PER_DOCUMENT = (HEADER, FOOTER, f"{R}/image", f"{R}/hyperlink")
STYLE_PARTS = (f"{R}/styles", "http://schemas.microsoft.com/office/2007/relationships/stylesWithEffects")

MARKER_PREFIX = "PublipostDoc"
# Bookmark ids must be unique in the combined document: document i's ids are shifted by i * ID_STRIDE.
ID_STRIDE = 1_000_000
# A page count field counts the whole combined document, not the recipient's pages.
WHOLE_DOCUMENT_FIELDS = (b"NUMPAGES", b"DOCPROPERTY  Pages", b"DOCPROPERTY Pages")
PAGE_FIELD = re.compile(rb"\bPAGE\b")
# Where a part names a style: paragraph, run, table and numbering style references.
_STYLE_REFERENCE = r'<(?:\w+:)?(?:pStyle|rStyle|tblStyle|numStyleLink|styleLink)\b[^>]*?\bval="([^"]+)"'
STYLE_REFERENCE = re.compile(_STYLE_REFERENCE.encode())
STYLE_REFERENCE_TEXT = re.compile(_STYLE_REFERENCE)
_PART_LIMIT = 2_000


def _w(name: str) -> str:
    return f"{{{W}}}{name}"


class NotCombinable(ValueError):
    """These documents cannot be laid out as one: convert them one by one."""


def marker(index: int) -> str:
    return f"{MARKER_PREFIX}{index:05d}"


Combiner = Callable[[Sequence[bytes]], bytes]


class _Package:
    """A DOCX read once: its parts, content types, and the main document with its relationships."""

    def __init__(self, docx: bytes) -> None:
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(docx))
            self._read: dict[str, bytes] = {}
            self.names = set(self.zip.namelist())
            if len(self.names) > _PART_LIMIT:
                raise NotCombinable(f"{len(self.names)} parts in one document")
            self.main = self._main_part()
            self.rels = _relationships(self.read(_rels_name(self.main))) if _rels_name(self.main) in self.names else {}
        except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError, OSError, ValueError) as exc:
            raise NotCombinable(f"not a readable DOCX: {exc}") from exc

    def read(self, name: str) -> bytes:
        """A part, decompressed once: combining looks at a document's main part and headers several times."""
        if name not in self._read:
            self._read[name] = self.zip.read(name)
        return self._read[name]

    @functools.cached_property
    def content_types(self) -> etree._Element:
        return etree.fromstring(self.read("[Content_Types].xml"))

    def _main_part(self) -> str:
        for rel in _relationships(self.read("_rels/.rels")).values():
            if rel["Type"] == OFFICE_DOCUMENT:
                return rel["Target"].lstrip("/")
        raise NotCombinable("no main document part")

    def shows_page_numbers(self) -> bool:
        """A PAGE field in the body, a header or a footer."""
        parts = [self.main] + [
            _resolve(self.main, rel["Target"]) for rel in self.rels.values() if rel["Type"] in (HEADER, FOOTER)
        ]
        return any(PAGE_FIELD.search(self.read(part)) for part in parts if part in self.names)

    def body_rel_ids(self, document: bytes) -> set[str]:
        root = etree.fromstring(document)
        return {value for _, value in _rel_attributes(root)}

    def shared_signature(self) -> tuple[object, ...]:
        """What must be equal for documents to share one copy: every part but headers, footers and images.

        Compared by CRC and size from the zip directory, without parsing the
        document or decompressing the (large) styles.
        """
        shared = sorted(
            (rel["Type"], _resolve(self.main, rel["Target"]))
            for rel in self.rels.values()
            if rel["Type"] not in PER_DOCUMENT and rel.get("TargetMode") != "External"
        )
        signature: list[object] = []
        for rel_type, name in shared:
            if name in self.names:
                info = self.zip.getinfo(name)
                signature.append((rel_type, name, info.CRC, info.file_size))
        return tuple(signature)


def combine_key(docx: bytes) -> tuple[object, ...] | None:
    """Documents with the same key can be combined; None means this one must be converted alone."""
    try:
        package = _Package(docx)
        parts = [package.main] + [
            _resolve(package.main, rel["Target"]) for rel in package.rels.values() if rel["Type"] in (HEADER, FOOTER)
        ]
        texts = [package.read(part) for part in parts if part in package.names]
        if any(field in text for text in texts for field in WHOLE_DOCUMENT_FIELDS):
            return None
        return (package.main, package.shared_signature())
    except (NotCombinable, etree.XMLSyntaxError, KeyError):
        return None


def combine_docx(documents: Sequence[bytes]) -> bytes:
    """One DOCX holding `documents` in order, each in its own section(s), each opened by its marker bookmark."""
    if not documents:
        raise NotCombinable("no documents")
    packages = [_Package(docx) for docx in documents]
    base = packages[0]
    files: dict[str, bytes] = {name: base.read(name) for name in base.names}
    content_types = etree.fromstring(files["[Content_Types].xml"])
    rels_tree = etree.fromstring(files[_rels_name(base.main)]) if _rels_name(base.main) in files else _new_rels()
    root = etree.fromstring(files[base.main])
    body = root.find(_w("body"))
    if body is None:
        raise NotCombinable("the first document has no body")
    parts = _PartCopier(base, files, content_types, rels_tree)
    numbering = _Numbering(base, files)
    empty_parts = _EmptyHeaders(base, files, content_types, rels_tree)
    even_and_odd = _settings_flag(base, files, "evenAndOddHeaders")
    base_children = list(body)
    for child in base_children:
        body.remove(child)

    for index, package in enumerate(packages):
        children = base_children if index == 0 else _body_children(package, index)
        final_section = children.pop() if children and children[-1].tag == _w("sectPr") else etree.Element(_w("sectPr"))
        if index:
            rel_map = parts.copy(package, index, [*children, final_section])
            _rename_rel_ids([*children, final_section], rel_map)
            numbering.restart_lists(children, index)
        _shift_bookmark_ids(children, index)
        children = _open_with_marker(children, index)
        first_section = _first_section(children) or final_section
        _start_on_new_page(first_section, restart_numbering=index > 0 and package.shows_page_numbers())
        if index:
            empty_parts.fill_missing(first_section, even_and_odd)
        if index < len(packages) - 1:
            children = _close_section(children, final_section)
            body.extend(children)
        else:
            body.extend(children)
            body.append(final_section)

    _inherit_repeated_headers(body, {rel.get("Id"): rel.get("Target") for rel in rels_tree})
    files[base.main] = _xml(root)
    files[_rels_name(base.main)] = _xml(rels_tree)
    files["[Content_Types].xml"] = _xml(content_types)
    numbering.save(files)
    _prune_styles(base, files)
    out = io.BytesIO()
    # Stored, not deflated: LibreOffice reads it from a local file, and compressing costs more than it saves.
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("[Content_Types].xml", files.pop("[Content_Types].xml"))
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def combine_docx_with_docxcompose(documents: Sequence[bytes]) -> bytes:
    """What combine_docx gives, through docxcompose and python-docx: each document after a section break of
    its own that carries its headers and footers and numbers its pages from 1, opened by its marker.

    docxcompose keeps the first document's sections only, so the headers and footers are copied here,
    as text: a document whose headers or footers reference other parts (a logo) is NotCombinable.
    """
    if not documents:
        raise NotCombinable("no documents")
    try:
        composer = Composer(_marked_document(documents[0], 0))
        for index, docx in enumerate(documents[1:], start=1):
            document = _marked_document(docx, index)
            section = composer.doc.add_section(WD_SECTION.NEW_PAGE)
            _copy_headers_and_footers(document.sections[-1], section, index)
            composer.append(document)
        for section in composer.doc.sections:
            _start_on_new_page(section._sectPr, restart_numbering=True)
        out = io.BytesIO()
        composer.save(out)
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, etree.XMLSyntaxError) as exc:
        raise NotCombinable(f"not combined by docxcompose: {exc}") from exc
    return out.getvalue()


def _marked_document(docx: bytes, index: int) -> DocxDocument:
    document = Document(io.BytesIO(docx))
    body = document.element.body
    if next(body.iter(_w("p")), None) is None:
        document.add_paragraph()
    _open_with_marker(list(body), index)
    return document


_HEADERS_AND_FOOTERS = (
    "header",
    "first_page_header",
    "even_page_header",
    "footer",
    "first_page_footer",
    "even_page_footer",
)


def _copy_headers_and_footers(source: Section, target: Section, index: int) -> None:
    target.different_first_page_header_footer = source.different_first_page_header_footer
    for name in _HEADERS_AND_FOOTERS:
        copy = getattr(target, name)
        copy.is_linked_to_previous = False  # its own part, empty unless the document has one
        original = getattr(source, name)
        if original.is_linked_to_previous:
            continue
        elements = list(original._element)
        if any(True for element in elements for _ in _rel_attributes(element)):
            raise NotCombinable(f"document {index} has a header or footer that references other parts")
        for child in list(copy._element):
            copy._element.remove(child)
        copy._element.extend(deepcopy(element) for element in elements)


def _body_children(package: _Package, index: int) -> list[etree._Element]:
    body = etree.fromstring(package.read(package.main)).find(_w("body"))
    if body is None:
        raise NotCombinable(f"document {index} has no body")
    return list(body)


# --- relationships and parts ----------------------------------------------------------------------


def _xml(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _rels_name(part: str) -> str:
    folder, name = posixpath.split(part)
    return posixpath.join(folder, "_rels", f"{name}.rels")


def _relationships(xml: bytes) -> dict[str, dict[str, str]]:
    return {rel.get("Id"): dict(rel.attrib) for rel in etree.fromstring(xml).iter(f"{{{PKG_RELS}}}Relationship")}


def _new_rels() -> etree._Element:
    return etree.Element(f"{{{PKG_RELS}}}Relationships", nsmap={None: PKG_RELS})


def _resolve(source_part: str, target: str) -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(source_part), target))


def _is_rel_attribute(name: str) -> bool:
    return name.startswith(f"{{{R}}}") or name == f"{{{VML_OFFICE}}}relid"


def _rel_attributes(root: etree._Element) -> Iterator[tuple[etree._Element, str]]:
    for element in root.iter():
        for name, value in element.attrib.items():
            if _is_rel_attribute(name):
                yield element, value


def _content_type(package: _Package, part: str) -> str:
    types = package.content_types
    for override in types.iter(f"{{{CONTENT_TYPES}}}Override"):
        if override.get("PartName").lstrip("/") == part:
            return override.get("ContentType")
    extension = posixpath.splitext(part)[1].lstrip(".").lower()
    for default in types.iter(f"{{{CONTENT_TYPES}}}Default"):
        if default.get("Extension").lower() == extension:
            return default.get("ContentType")
    raise NotCombinable(f"no content type for {part}")


def _add_override(content_types: etree._Element, part: str, content_type: str) -> None:
    etree.SubElement(content_types, f"{{{CONTENT_TYPES}}}Override", PartName=f"/{part}", ContentType=content_type)


class _PartCopier:
    """Brings what a document's body references into the combined package, under publipost/d<index>/.

    A part that has no relationships of its own and is byte for byte one already
    there (the same logo, the same static header) is shared instead: LibreOffice
    then loads it once, which matters for a chunk of hundreds of letters.
    """

    def __init__(
        self, base: _Package, files: dict[str, bytes], content_types: etree._Element, rels_tree: etree._Element
    ) -> None:
        self._files, self._types, self._rels = files, content_types, rels_tree
        self._used = {rel.get("Id") for rel in rels_tree}
        self._shared: dict[tuple[str, bytes], str] = {}
        for rel_id in base.body_rel_ids(files[base.main]):
            rel = base.rels.get(rel_id)
            if rel is not None and (key := self._share_key(base, rel)) is not None:
                self._shared.setdefault(key, rel_id)

    @staticmethod
    def _share_key(package: _Package, rel: dict[str, str]) -> tuple[str, bytes] | None:
        if rel.get("TargetMode") == "External":
            return None
        part = _resolve(package.main, rel["Target"])
        if part not in package.names or _rels_name(part) in package.names:
            return None
        return rel["Type"], hashlib.sha256(package.read(part)).digest()

    def copy(self, package: _Package, index: int, elements: list[etree._Element]) -> dict[str, str]:
        """Bring in what these body elements reference; return the new relationship id of each old one.

        Copies keep their folders under the prefix, so relative targets between them stay valid.
        """
        prefix = f"publipost/d{index}/"
        rel_map: dict[str, str] = {}
        pending: list[str] = []
        for element in elements:
            for _, rel_id in _rel_attributes(element):
                if rel_id in rel_map:
                    continue
                rel = package.rels.get(rel_id)
                if rel is None:
                    raise NotCombinable(f"document {index} references a missing relationship {rel_id}")
                key = self._share_key(package, rel)
                if key is not None and key in self._shared:
                    rel_map[rel_id] = self._shared[key]
                    continue
                new_id = self._new_id(f"pp{index}r{len(rel_map)}")
                rel_map[rel_id] = new_id
                attributes = {"Id": new_id, "Type": rel["Type"]}
                if rel.get("TargetMode") == "External":
                    attributes.update(Target=rel["Target"], TargetMode="External")
                else:
                    part = _resolve(package.main, rel["Target"])
                    attributes["Target"] = posixpath.relpath(prefix + part, posixpath.dirname(package.main))
                    pending.append(part)
                    if key is not None:
                        self._shared[key] = new_id
                etree.SubElement(self._rels, f"{{{PKG_RELS}}}Relationship", attributes)
        self._copy_parts(package, index, prefix, pending)
        return rel_map

    def _new_id(self, wanted: str) -> str:
        while wanted in self._used:
            wanted += "x"
        self._used.add(wanted)
        return wanted

    def _copy_parts(self, package: _Package, index: int, prefix: str, pending: list[str]) -> None:
        copied: set[str] = set()
        while pending:
            part = pending.pop()
            if part in copied:
                continue
            if part not in package.names:
                raise NotCombinable(f"document {index} references a missing part {part}")
            copied.add(part)
            self._files[prefix + part] = package.read(part)
            _add_override(self._types, prefix + part, _content_type(package, part))
            part_rels = _rels_name(part)
            if part_rels not in package.names:
                continue
            rels = etree.fromstring(package.read(part_rels))
            for rel in rels.iter(f"{{{PKG_RELS}}}Relationship"):
                if rel.get("TargetMode") == "External":
                    continue
                target = _resolve(part, rel.get("Target"))
                if rel.get("Target").startswith("/"):
                    rel.set("Target", f"/{prefix}{target}")
                pending.append(target)
            self._files[prefix + part_rels] = _xml(rels)


def _rename_rel_ids(elements: list[etree._Element], rel_map: dict[str, str]) -> None:
    for element in elements:
        for node in element.iter():
            for name, value in node.attrib.items():
                if _is_rel_attribute(name) and value in rel_map:
                    node.set(name, rel_map[value])


_HEADER_KINDS = {"headerReference": ("hdr", HEADER), "footerReference": ("ftr", FOOTER)}


class _EmptyHeaders:
    """Word repeats the previous section's header where a section names none: a document without
    a header must not show its predecessor's, so its first section points at an empty one."""

    def __init__(
        self, base: _Package, files: dict[str, bytes], content_types: etree._Element, rels_tree: etree._Element
    ) -> None:
        self._base, self._files, self._types, self._rels = base, files, content_types, rels_tree
        self._ids: dict[str, str] = {}

    def fill_missing(self, section: etree._Element, even_and_odd: bool) -> None:
        kinds = ["default"]
        if section.find(_w("titlePg")) is not None:
            kinds.append("first")
        if even_and_odd:
            kinds.append("even")
        for reference in _HEADER_KINDS:
            present = {ref.get(_w("type"), "default") for ref in section.findall(_w(reference))}
            for kind in kinds:
                if kind not in present:
                    ref = etree.Element(_w(reference), {_w("type"): kind, f"{{{R}}}id": self._part(reference)})
                    section.insert(0, ref)  # references come first in a sectPr

    def _part(self, reference: str) -> str:
        if reference not in self._ids:
            root_name, rel_type = _HEADER_KINDS[reference]
            part = f"publipost/empty-{root_name}.xml"
            self._files[part] = (
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                f'<w:{root_name} xmlns:w="{W}"><w:p/></w:{root_name}>'
            ).encode()
            kind = "header" if root_name == "hdr" else "footer"
            _add_override(
                self._types, part, f"application/vnd.openxmlformats-officedocument.wordprocessingml.{kind}+xml"
            )
            rel_id = f"ppEmpty{root_name}"
            target = posixpath.relpath(part, posixpath.dirname(self._base.main))
            etree.SubElement(self._rels, f"{{{PKG_RELS}}}Relationship", Id=rel_id, Type=rel_type, Target=target)
            self._ids[reference] = rel_id
        return self._ids[reference]


def _inherit_repeated_headers(body: etree._Element, targets: dict[str, str]) -> None:
    """A section whose headers (or footers) are the previous section's names none and inherits them.

    LibreOffice imports a section's header or footer once per section that
    names it, even when it is one shared part: letters of one template with the
    same header then pay for it once per run instead of once per letter. Only
    a section naming exactly the same parts for the same kinds, with the same
    first-page setting, inherits; anything else keeps its own references.
    """
    previous: dict[str, tuple[object, ...]] = {}
    sections = [
        section for paragraph in body.iterfind(_w("p")) for section in paragraph.iterfind(f"{_w('pPr')}/{_w('sectPr')}")
    ]
    sections.extend(body.iterfind(_w("sectPr")))
    for section in sections:
        title_page = section.find(_w("titlePg")) is not None
        for reference in _HEADER_KINDS:
            refs = section.findall(_w(reference))
            named = (
                title_page,
                sorted((ref.get(_w("type"), "default"), targets.get(ref.get(f"{{{R}}}id"))) for ref in refs),
            )
            if refs and previous.get(reference) == named:
                for ref in refs:
                    section.remove(ref)
            previous[reference] = named


def _settings_flag(base: _Package, files: dict[str, bytes], flag: str) -> bool:
    for rel in base.rels.values():
        if rel["Type"] == f"{R}/settings":
            part = _resolve(base.main, rel["Target"])
            return part in files and f"w:{flag}".encode() in files[part]
    return False


def _prune_styles(base: _Package, files: dict[str, bytes]) -> None:
    """Keep only the styles the combined document uses (and what they derive from).

    Templates made in Word carry hundreds of built-in style definitions and
    "latent" style hints for Word's gallery; LibreOffice parses them all on every
    load, a third of the time of a chunk of twenty letters. Unused ones change
    nothing on the page.
    """
    style_parts = {_resolve(base.main, r["Target"]): r["Type"] for r in base.rels.values() if r["Type"] in STYLE_PARTS}
    part = next((name for name, kind in style_parts.items() if kind == f"{R}/styles"), None)
    if part is None or part not in files:
        return
    styles = etree.fromstring(files[part])
    used = {
        value.decode()
        for name, data in files.items()
        if name.endswith(".xml") and name not in style_parts
        for value in STYLE_REFERENCE.findall(data)
    }
    by_id = {style.get(_w("styleId")): style for style in styles.findall(_w("style"))}
    kept = {style_id for style_id, style in by_id.items() if style.get(_w("default")) == "1"}
    pending = list(used)
    while pending:
        style_id = pending.pop()
        if style_id in kept or style_id not in by_id:
            continue
        kept.add(style_id)
        style = by_id[style_id]
        pending.extend(link.get(_w("val")) for name in ("basedOn", "next", "link") for link in style.findall(_w(name)))
        pending.extend(STYLE_REFERENCE_TEXT.findall(etree.tostring(style, encoding="unicode")))
    for style_id, style in by_id.items():
        if style_id not in kept:
            styles.remove(style)
    latent = styles.find(_w("latentStyles"))
    if latent is not None:
        styles.remove(latent)
    files[part] = _xml(styles)


# --- numbering ------------------------------------------------------------------------------------


class _Numbering:
    """Numbered lists restart in each document: its lists get their own numbering instances."""

    def __init__(self, base: _Package, files: dict[str, bytes]) -> None:
        self._part = next(
            (_resolve(base.main, rel["Target"]) for rel in base.rels.values() if rel["Type"] == f"{R}/numbering"),
            None,
        )
        self._root = etree.fromstring(files[self._part]) if self._part and self._part in files else None
        self._changed = False
        if self._root is not None:
            ids = [int(num.get(_w("numId"))) for num in self._root.findall(_w("num"))]
            self._next_id = max(ids, default=0) + 1

    def restart_lists(self, elements: list[etree._Element], index: int) -> None:
        if self._root is None:
            return
        renumbered: dict[str, str] = {}
        for element in elements:
            for num_id in element.iter(_w("numId")):
                old = num_id.get(_w("val"))
                if old in (None, "0"):
                    continue
                if old not in renumbered:
                    renumbered[old] = self._restarted_copy(old)
                if renumbered[old]:
                    num_id.set(_w("val"), renumbered[old])

    def _restarted_copy(self, num_id: str) -> str:
        original = next((n for n in self._root.findall(_w("num")) if n.get(_w("numId")) == num_id), None)
        if original is None:
            return ""
        abstract_id = original.find(_w("abstractNumId")).get(_w("val"))
        abstract = next(
            (a for a in self._root.findall(_w("abstractNum")) if a.get(_w("abstractNumId")) == abstract_id), None
        )
        copy = deepcopy(original)
        new_id = str(self._next_id)
        self._next_id += 1
        copy.set(_w("numId"), new_id)
        overridden = {
            o.get(_w("ilvl")) for o in copy.findall(_w("lvlOverride")) if o.find(_w("startOverride")) is not None
        }
        for level in abstract.findall(_w("lvl")) if abstract is not None else ():
            ilvl = level.get(_w("ilvl"))
            if ilvl in overridden:
                continue
            start = level.find(_w("start"))
            override = etree.SubElement(copy, _w("lvlOverride"), {_w("ilvl"): ilvl})
            etree.SubElement(
                override, _w("startOverride"), {_w("val"): start.get(_w("val")) if start is not None else "0"}
            )
        cleanup = self._root.find(_w("numIdMacAtCleanup"))
        if cleanup is not None:
            cleanup.addprevious(copy)
        else:
            self._root.append(copy)
        self._changed = True
        return new_id

    def save(self, files: dict[str, bytes]) -> None:
        if self._changed:
            files[self._part] = _xml(self._root)


# --- sections and markers -------------------------------------------------------------------------


def _shift_bookmark_ids(elements: list[etree._Element], index: int) -> None:
    if not index:
        return
    for element in elements:
        for node in element.iter(_w("bookmarkStart"), _w("bookmarkEnd")):
            node.set(_w("id"), str(index * ID_STRIDE + int(node.get(_w("id"), "0"))))


def _open_with_marker(elements: list[etree._Element], index: int) -> list[etree._Element]:
    """Put the marker bookmark at the start of the document's first paragraph (made if there is none)."""
    paragraph = next((p for element in elements for p in element.iter(_w("p"))), None)
    if paragraph is None:
        paragraph = etree.Element(_w("p"))
        elements = [paragraph, *elements]
    bookmark_id = str(index * ID_STRIDE + ID_STRIDE - 1)
    position = 1 if len(paragraph) and paragraph[0].tag == _w("pPr") else 0
    paragraph.insert(position, etree.Element(_w("bookmarkEnd"), {_w("id"): bookmark_id}))
    paragraph.insert(position, etree.Element(_w("bookmarkStart"), {_w("id"): bookmark_id, _w("name"): marker(index)}))
    return elements


def _first_section(elements: list[etree._Element]) -> etree._Element | None:
    """The properties of the document's first section when it has several (they sit in a paragraph)."""
    for element in elements:
        if element.tag == _w("p"):
            section = element.find(f"{_w('pPr')}/{_w('sectPr')}")
            if section is not None:
                return section
    return None


def _start_on_new_page(section: etree._Element, restart_numbering: bool) -> None:
    """The document's first section starts a page and, when it shows page numbers, numbers it 1 as when
    it is converted alone. Only then: LibreOffice lays out a blank page before a page numbered 1 that
    follows an odd page (it leaves it out of the PDF, but the layout time is spent)."""
    kind = section.find(_w("type"))
    if kind is None:
        kind = etree.Element(_w("type"))
        references = len(section.findall(_w("headerReference"))) + len(section.findall(_w("footerReference")))
        insert_at = references + (1 if section.find(_w("footnotePr")) is not None else 0)
        insert_at += 1 if section.find(_w("endnotePr")) is not None else 0
        section.insert(insert_at, kind)
    kind.set(_w("val"), "nextPage")
    if not restart_numbering:
        return
    numbering = section.find(_w("pgNumType"))
    if numbering is None:
        numbering = etree.Element(_w("pgNumType"))
        anchor = next(
            (
                section.find(_w(name))
                for name in ("pgBorders", "lnNumType", "pgMar", "pgSz")
                if section.find(_w(name)) is not None
            ),
            None,
        )
        if anchor is not None:
            anchor.addnext(numbering)
        else:
            section.append(numbering)
    if numbering.get(_w("start")) is None:
        numbering.set(_w("start"), "1")


def _close_section(elements: list[etree._Element], section: etree._Element) -> list[etree._Element]:
    """End the document's last section after its last paragraph, as Word stores a section break."""
    last = elements[-1] if elements else None
    if last is None or last.tag != _w("p") or last.find(f"{_w('pPr')}/{_w('sectPr')}") is not None:
        last = etree.Element(_w("p"))
        elements = [*elements, last]
    properties = last.find(_w("pPr"))
    if properties is None:
        properties = etree.Element(_w("pPr"))
        last.insert(0, properties)
    change = properties.find(_w("pPrChange"))
    if change is not None:
        change.addprevious(section)
    else:
        properties.append(section)
    return elements


# By PUBLIPOST_DOCX_COMBINER.
COMBINERS: dict[str, Combiner] = {"publipost": combine_docx, "docxcompose": combine_docx_with_docxcompose}
