"""What a DOCX links to outside itself, taken out before any backend lays it out.

A relationship with TargetMode="External" points outside the package: a picture
linked to a URL or a file, a linked object, a sub-document, an attached template,
a hyperlink. LibreOffice loads a linked picture while it lays the document out:
a picture linked to http://… was fetched at every conversion (a PROPFIND and a
GET, twice when a combined run fell back to one by one), a request from inside
the cluster to wherever a template says, and a document that changes when the
URL's content does. So, before conversion:

- hyperlinks stay: LibreOffice never follows them, it writes them into the PDF;
- a link that changes nothing LibreOffice draws goes: a picture's link beside its
  embedded copy (Word's "Insert and Link" keeps both, and the copy is what the
  PDF shows), an attached template (Word's Normal.dotm: the styles are in the
  document), a relationship nothing refers to;
- any other use, a picture known only by its link above all, refuses the document,
  naming the part and the relationship: leaving it out would send recipients a
  letter without its logo and nobody would know, while the fix (embed the picture
  in the template) takes its author a minute.

LibreOffice is also told not to load linked resources at all (uno_bridge), for
whatever would get past this.
"""

import io
import posixpath
import zipfile
from collections.abc import Mapping

from lxml import etree

from .combine import PKG_RELS, VML_OFFICE, W

KEPT = "/hyperlink"  # the end of a hyperlink relationship's type, transitional or strict
_SHOWN_TARGET = 120


class ExternalResource(ValueError):
    """The document shows something it does not contain: it cannot be converted without fetching it."""


def without_external_resources(docx: bytes) -> bytes:
    """`docx` without the external relationships a backend would load (the same bytes when it has none).

    Raises ExternalResource when what the document shows depends on one. A
    package that cannot be read is returned as it is: the backend refuses it.
    """
    try:
        package = zipfile.ZipFile(io.BytesIO(docx))
        relationships = {name: package.read(name) for name in package.namelist() if name.endswith(".rels")}
    except Exception:  # noqa: BLE001 - the backend refuses it too, and loads nothing linked (uno_bridge)
        return docx
    external = {name: dropped for name, rels in relationships.items() if (dropped := _external(rels))}
    if not external:
        return docx
    names = set(package.namelist())
    replaced: dict[str, bytes] = {}
    for rels_name, dropped in external.items():
        replaced[rels_name] = _without(relationships[rels_name], dropped)
        source = _source_part(rels_name)
        unlinked = _unlinked(source, package.read(source), dropped) if source in names else None
        if unlinked is not None:
            replaced[source] = unlinked
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in package.infolist():  # same order, names and compression
            target.writestr(info, replaced[info.filename] if info.filename in replaced else package.read(info))
    return out.getvalue()


def _external(rels: bytes) -> dict[str, tuple[str, str]]:
    """Id → (type, target) of the external relationships to drop."""
    if b"External" not in rels:  # most parts: no parsing
        return {}
    try:
        root = etree.fromstring(rels)
    except etree.XMLSyntaxError as exc:
        raise ExternalResource(f"relationships naming an external target cannot be read: {exc}") from exc
    return {
        rel.get("Id"): (rel.get("Type", ""), rel.get("Target", ""))
        for rel in root.iter(f"{{{PKG_RELS}}}Relationship")
        if rel.get("TargetMode") == "External" and not rel.get("Type", "").endswith(KEPT)
    }


def _without(rels: bytes, dropped: Mapping[str, tuple[str, str]]) -> bytes:
    root = etree.fromstring(rels)
    for rel in list(root.iter(f"{{{PKG_RELS}}}Relationship")):
        if rel.get("Id") in dropped:
            root.remove(rel)
    return _xml(root)


def _unlinked(part: str, xml: bytes, dropped: Mapping[str, tuple[str, str]]) -> bytes | None:
    """The part without its references to the dropped relationships (None: it has none), or
    ExternalResource if it needs one."""
    try:
        root = etree.fromstring(xml)
    except etree.XMLSyntaxError as exc:
        raise ExternalResource(f"{part} links outside the document and cannot be read: {exc}") from exc
    references = [
        (element, name, value)
        for element in root.iter()
        for name, value in element.attrib.items()
        if value in dropped and _is_rel_attribute(name)
    ]
    if not references:
        return None
    for element, name, value in references:
        embedded = element.get(name.replace("}link", "}embed")) if name.endswith("}link") else None
        if embedded is not None and embedded not in dropped:
            del element.attrib[name]  # the embedded copy is what gets drawn
        elif element.tag == f"{{{W}}}attachedTemplate":
            if element.getparent() is not None:
                element.getparent().remove(element)
        else:
            rel_type, target = dropped[value]
            shown = target if len(target) <= _SHOWN_TARGET else f"{target[:_SHOWN_TARGET]}…"
            raise ExternalResource(
                f"{part}: relationship {value} ({rel_type.rsplit('/', 1)[-1]}) links to {shown}, outside the "
                "document; it is not fetched: embed it in the template instead of linking to it"
            )
    return _xml(root)


def _is_rel_attribute(name: str) -> bool:
    return name.split("}", 1)[0].endswith("/relationships") or name == f"{{{VML_OFFICE}}}relid"


def _source_part(rels_name: str) -> str:
    """word/_rels/document.xml.rels → word/document.xml (_rels/.rels is the package's: no part)."""
    folder, name = posixpath.split(rels_name)
    return posixpath.join(posixpath.dirname(folder), name.removesuffix(".rels"))


def _xml(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
