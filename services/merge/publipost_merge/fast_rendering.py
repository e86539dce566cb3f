"""Compile a DOCX template once, render many records from it: docxtpl's output without docxtpl's per-record cost.

For every record, plain docxtpl unzips the template, parses every XML part with
python-docx, rewrites the body, headers and footers into Jinja source with its
regex preprocessing (patch_xml), compiles that source, renders it, and zips the
whole package again, compressing the styles, theme and fonts anew. Only the
Jinja rendering depends on the record.

`compile_template` runs docxtpl's own machinery once per template (python-docx
load, get_xml / get_part_xml, patch_xml, the same core properties and footnotes
passes) and keeps:
- the compiled Jinja template of each part that docxtpl renders and that holds
  Jinja code (body, headers, footers, core properties, footnotes);
- every other zip member as python-docx writes it after docxtpl's render,
  deflated once — parts whose Jinja source is plain text are rendered once here.

`CompiledTemplate.render` then runs the compiled templates, applies what
docxtpl applies to Jinja's output (render_xml_part's clean-up and
resolve_listing for tabs and newlines in values, fix_tables, docPr ids renumbered
from 1001), serialises each part as python-docx would, and writes the zip. The
XML of every part is byte for byte docxtpl's, but for one case: a template
without core properties gets python-docx's default ones, stamped with the time
of compilation instead of the time of each render.

Falls back to plain docxtpl (the caller's reference path):
- templates that cannot be prepared: a Jinja syntax error in any part (docxtpl
  then reports it exactly as before), a package python-docx cannot open, and
  footnotes holding Jinja code in a document of several sections (docxtpl
  renders footnotes once per section, each pass over the previous output);
- records holding anything but plain data (str, numbers, bool, None, dates,
  lists, tuples, dicts; see `CompiledTemplate.accepts`): docxtpl's
  InlineImage, Subdoc and RichText need the DocxTemplate being rendered
  (new image parts, hyperlink relationships, merged styles).
"""

import datetime as dt
import hashlib
import re
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from io import BytesIO
from typing import Any
from zipfile import ZipFile

from docx.opc.constants import CONTENT_TYPE, RELATIONSHIP_TYPE
from docx.opc.coreprops import CoreProperties
from docx.opc.oxml import serialize_part_xml
from docx.oxml.ns import nsmap, qn
from docx.oxml.parser import parse_xml
from docxtpl import DocxTemplate
from jinja2 import Environment, Template, nodes
from lxml import etree
from publipost_logging import get_logger

# The core properties docxtpl renders, in its order (DocxTemplate.render_properties).
CORE_PROPERTIES = ("author", "comments", "identifier", "language", "subject", "title")

# docxtpl numbers the pictures of a rendered body from here (DocxTemplate.render_init).
FIRST_DOCPR_ID = 1001

PLAIN_TYPES = frozenset({str, int, float, bool, type(None), Decimal, dt.date, dt.datetime, dt.time})
CONTAINER_TYPES = frozenset({list, tuple, dict})

# patch_xml, fix_tables and resolve_listing read nothing from the instance: one
# template-less DocxTemplate lends them to every render, on any thread.
_DOCXTPL = DocxTemplate(None)  # type: ignore[arg-type]

_PARAGRAPH = re.compile(r"<w:p([ >])")
_DOCPR = etree.XPath("//wp:docPr", namespaces=nsmap)
_BODY = qn("w:body")

log = get_logger(__name__)


class NotCompilable(Exception):
    """This template renders through plain docxtpl; the message says why."""


def jinja_source(xml: str) -> str:
    """What docxtpl's render_xml_part hands to Jinja: a line per paragraph, for error line numbers."""
    return _PARAGRAPH.sub(r"\n<w:p\1", xml)


def after_jinja(xml: str) -> str:
    """What docxtpl's render_xml_part does to Jinja's output."""
    # re.sub(r"\n<w:p([ >])", r"<w:p\1") in docxtpl; the same as these two, at a third of the cost.
    xml = xml.replace("\n<w:p ", "<w:p ").replace("\n<w:p>", "<w:p>")
    xml = xml.replace("{_{", "{{").replace("}_}", "}}").replace("{_%", "{%").replace("%_}", "%}")
    # resolve_listing only rewrites text holding one of these characters; most
    # records have none, and the regex walk over every run is the costly part.
    if "\n" in xml or "\t" in xml or "\a" in xml or "\f" in xml:
        xml = _DOCXTPL.resolve_listing(xml)
    return xml


def is_plain_text(env: Environment, source: str) -> bool:
    """True when the Jinja source holds no Jinja code: its output is the same for every record."""
    return all(
        isinstance(node, nodes.Output) and all(isinstance(child, nodes.TemplateData) for child in node.nodes)
        for node in env.parse(source).body
    )


def render_body(template: Template, skeleton: bytes, context: dict[str, Any]) -> bytes:
    """docxtpl's render of the body (build_xml, fix_tables, fix_docpr_ids, map_tree), then python-docx's save."""
    tree = _DOCXTPL.fix_tables(after_jinja(template.render(context)))
    for number, picture in enumerate(_DOCPR(tree), start=FIRST_DOCPR_ID):
        picture.attrib["id"] = str(number)
    document = etree.fromstring(skeleton)
    document.replace(document.find(_BODY), tree)
    return serialize_part_xml(document)


def render_header_or_footer(template: Template, context: dict[str, Any]) -> bytes:
    """docxtpl's build_headers_footers_xml, then the XmlPart it loads (map_headers_footers_xml) as saved."""
    return serialize_part_xml(parse_xml(after_jinja(template.render(context)).encode("utf-8")))


def render_footnotes(template: Template, context: dict[str, Any]) -> bytes:
    """docxtpl's render_footnotes pass: the raw part, rendered, kept as text."""
    return after_jinja(template.render(context)).encode("utf-8")


@dataclass(frozen=True)
class ZipMember:
    """One zip member, deflated."""

    name: bytes
    flags: int
    crc: int
    size: int
    deflated: bytes

    @classmethod
    def of(cls, name: str, data: bytes) -> "ZipMember":
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
        deflated = compressor.compress(data) + compressor.flush()
        encoded = name.encode("utf-8")
        flags = 0 if encoded.isascii() else 0x800  # bit 11: the name is UTF-8
        return cls(encoded, flags, zlib.crc32(data), len(data), deflated)


_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_CENTRAL_HEADER = struct.Struct("<4s6H3L5H2L")
_END_OF_CENTRAL_DIRECTORY = struct.Struct("<4s4H2LH")
_DEFLATED = 8
_ZIP_VERSION = 20


def write_zip(members: Iterable[ZipMember], saved_at: time.struct_time) -> bytes:
    """A zip of already deflated members: the unchanged parts are never compressed again."""
    dos_date = (saved_at.tm_year - 1980) << 9 | saved_at.tm_mon << 5 | saved_at.tm_mday
    dos_time = saved_at.tm_hour << 11 | saved_at.tm_min << 5 | saved_at.tm_sec // 2
    chunks: list[bytes] = []
    directory: list[bytes] = []
    offset = 0
    for member in members:
        sizes = (member.crc, len(member.deflated), member.size)
        header = _LOCAL_HEADER.pack(
            b"PK\x03\x04", _ZIP_VERSION, member.flags, _DEFLATED, dos_time, dos_date, *sizes, len(member.name), 0
        )
        directory.append(
            _CENTRAL_HEADER.pack(
                b"PK\x01\x02",
                _ZIP_VERSION,
                _ZIP_VERSION,
                member.flags,
                _DEFLATED,
                dos_time,
                dos_date,
                *sizes,
                len(member.name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + member.name
        )
        chunks += (header, member.name, member.deflated)
        offset += len(header) + len(member.name) + len(member.deflated)
    central = b"".join(directory)
    end = _END_OF_CENTRAL_DIRECTORY.pack(b"PK\x05\x06", 0, 0, len(directory), len(directory), len(central), offset, 0)
    return b"".join(chunks) + central + end


RenderPart = Callable[[dict[str, Any]], bytes]


class CompiledTemplate:
    """A template ready to render any number of records; holds no per-record state."""

    def __init__(self, members: list[ZipMember | str], renderers: list[tuple[str, RenderPart]]) -> None:
        # members: python-docx's zip order, a name where the member is rendered per record.
        # renderers: docxtpl's rendering order (body, headers, footers, properties,
        # footnotes), so that a record failing in two parts fails with the same error.
        self._members = members
        self._renderers = renderers

    @staticmethod
    def accepts(context: dict[str, Any]) -> bool:
        """Plain data only: anything else (docxtpl's InlineImage, Subdoc, RichText...) needs plain docxtpl."""
        pending: list[Any] = list(context.values())
        while pending:
            value = pending.pop()
            kind = type(value)
            if kind in CONTAINER_TYPES:
                pending.extend(value.values() if kind is dict else value)
            elif kind not in PLAIN_TYPES:
                return False
        return True

    def render(self, context: dict[str, Any]) -> bytes:
        rendered = {name: ZipMember.of(name, render(context)) for name, render in self._renderers}
        members = (rendered[member] if isinstance(member, str) else member for member in self._members)
        return write_zip(members, time.localtime())


def compile_template(template: bytes, env: Environment) -> CompiledTemplate:
    """Prepare `template` with docxtpl's own machinery, once.

    Raises NotCompilable for what this path leaves to plain docxtpl, and
    whatever python-docx or docxtpl raise on a package they cannot read.
    """
    docxtpl = DocxTemplate(BytesIO(template))
    docxtpl.init_docx()
    renderers: dict[str, RenderPart] = {}
    fixed: dict[str, bytes] = {}

    def prepare(name: str, source: str, render: Callable[[Template, dict[str, Any]], bytes]) -> None:
        compiled = _compile(env, name, source)
        if is_plain_text(env, source):
            fixed[name] = render(compiled, {})
        else:
            renderers[name] = lambda context: render(compiled, context)

    document = docxtpl.docx.element
    body = document.body
    skeleton_body = etree.Element(_BODY)
    document.replace(body, skeleton_body)
    skeleton = etree.tostring(document)
    document.replace(skeleton_body, body)
    prepare(
        docxtpl.docx.part.partname.membername,
        jinja_source(docxtpl.patch_xml(docxtpl.get_xml())),
        lambda compiled, context: render_body(compiled, skeleton, context),
    )
    for uri in (DocxTemplate.HEADER_URI, DocxTemplate.FOOTER_URI):
        for _, part in docxtpl.get_headers_footers(uri):
            source = jinja_source(docxtpl.patch_xml(docxtpl.get_part_xml(part)))
            prepare(part.partname.membername, source, render_header_or_footer)
    _prepare_core_properties(docxtpl, env, renderers)
    _prepare_footnotes(docxtpl, env, renderers, fixed)

    saved = BytesIO()
    docxtpl.docx.save(saved)
    members: list[ZipMember | str] = []
    with ZipFile(saved) as package:
        for name in package.namelist():
            if name in renderers:
                members.append(name)
            else:
                members.append(ZipMember.of(name, fixed[name] if name in fixed else package.read(name)))
    return CompiledTemplate(members, list(renderers.items()))


def _compile(env: Environment, name: str, source: str) -> Template:
    try:
        return env.from_string(source)
    except Exception as exc:
        raise NotCompilable(f"{name}: {type(exc).__name__}: {exc}") from exc


def _prepare_core_properties(docxtpl: DocxTemplate, env: Environment, renderers: dict[str, RenderPart]) -> None:
    """docxtpl renders six core properties as templates; they are nearly always plain text, set once here."""
    properties = docxtpl.docx.core_properties  # creates the part, as docxtpl does, when missing
    part = docxtpl.docx.part.package.part_related_by(RELATIONSHIP_TYPE.CORE_PROPERTIES)
    before = serialize_part_xml(part.element)
    templates: list[tuple[str, Template | str]] = []
    for name in CORE_PROPERTIES:
        initial = getattr(properties, name)
        compiled = _compile(env, f"core property {name}", initial)
        templates.append((name, compiled.render({}) if is_plain_text(env, initial) else compiled))
    if all(isinstance(value, str) for _, value in templates):
        for name, value in templates:
            setattr(properties, name, value)
        return

    def render(context: dict[str, Any]) -> bytes:
        element = parse_xml(before)
        rendered = CoreProperties(element)
        for name, value in templates:
            setattr(rendered, name, value if isinstance(value, str) else value.render(context))
        return serialize_part_xml(element)

    renderers[part.partname.membername] = render


def _prepare_footnotes(
    docxtpl: DocxTemplate, env: Environment, renderers: dict[str, RenderPart], fixed: dict[str, bytes]
) -> None:
    """docxtpl's render_footnotes: one pass per section over each footnotes part."""
    passes = len(docxtpl.docx.sections)
    for part in docxtpl.docx.part.package.parts:
        if part.content_type != CONTENT_TYPE.WML_FOOTNOTES or passes == 0:
            continue
        name = part.partname.membername
        blob = part.blob
        for _ in range(passes):
            source = jinja_source(docxtpl.patch_xml(blob.decode("utf-8")))
            compiled = _compile(env, name, source)
            if not is_plain_text(env, source):
                break
            blob = render_footnotes(compiled, {})
        else:
            fixed[name] = blob
            continue
        if passes > 1:
            raise NotCompilable(f"{name}: footnotes with Jinja code in a document of {passes} sections")
        renderers[name] = lambda context, compiled=compiled: render_footnotes(compiled, context)


class CompiledTemplateCache:
    """The last `capacity` templates used, compiled (or known to need plain docxtpl), keyed by content hash."""

    def __init__(self, env: Environment, capacity: int) -> None:
        self._env = env
        self._capacity = capacity
        self._entries: OrderedDict[bytes, CompiledTemplate | NotCompilable] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, template: bytes) -> CompiledTemplate | NotCompilable:
        key = hashlib.sha256(template).digest()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        # Compiled outside the lock: two threads may compile the same template
        # once each, rather than every render waiting for one compilation.
        try:
            entry = compile_template(template, self._env)
        except NotCompilable as exc:
            entry = exc
        except Exception as exc:  # noqa: BLE001 - plain docxtpl then fails each record with its own error
            entry = NotCompilable(f"{type(exc).__name__}: {exc}")
        if isinstance(entry, NotCompilable):
            log.info("template renders through plain docxtpl", reason=str(entry))
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return entry

    def __len__(self) -> int:
        return len(self._entries)
