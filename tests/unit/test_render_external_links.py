"""What a DOCX links to outside itself is taken out before conversion, or refuses the document."""

import base64
import io
import zipfile
from pathlib import Path

import pytest
from lxml import etree
from publipost_merge.rendering import render_docx
from publipost_render_pdf.external_links import ExternalResource, without_external_resources

from tests.support import sample_record

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
LINK, EMBED, SITE = "rIdLogoLink", "rIdLogoEmbed", "rIdSite"


def letter(n: int = 1) -> bytes:
    return render_docx(SAMPLE.read_bytes(), sample_record(n))


def edited(docx: bytes, change: dict[str, object]) -> bytes:
    """`docx` with parts changed: bytes replace or add a part, a function maps the old bytes to new ones."""
    source = zipfile.ZipFile(io.BytesIO(docx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            new = change.pop(name, None)
            data = source.read(name)
            target.writestr(name, new(data) if callable(new) else new or data)
        for name, data in change.items():
            target.writestr(name, data)
    return out.getvalue()


def _relationship(rel_id: str, rel_type: str, target: str, external: bool = True) -> bytes:
    mode = ' TargetMode="External"' if external else ""
    return f'<Relationship Id="{rel_id}" Type="{R}/{rel_type}" Target="{target}"{mode}/></Relationships>'.encode()


def _picture(blip: str) -> str:
    return (
        '<w:p><w:r><w:drawing><wp:inline><wp:extent cx="952500" cy="952500"/><wp:docPr id="901" name="Logo"/>'
        '<a:graphic xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main">'
        '<a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/picture">'
        '<pic:pic xmlns:pic="http://schemas.openxmlformats.org/drawingml/2006/picture">'
        '<pic:nvPicPr><pic:cNvPr id="901" name="logo.png"/><pic:cNvPicPr/></pic:nvPicPr>'
        f"<pic:blipFill><a:blip {blip}/><a:stretch><a:fillRect/></a:stretch></pic:blipFill>"
        '<pic:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="952500" cy="952500"/></a:xfrm>'
        '<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></pic:spPr></pic:pic></a:graphicData></a:graphic>'
        "</wp:inline></w:drawing></w:r></w:p>"
    )


def linked_picture(docx: bytes, url: str, *, embedded: bool = False, hyperlink: str | None = None) -> bytes:
    """`docx` opening with a picture linked to `url` (Word's "Link to File"); `embedded`: with a copy in the
    document beside the link (Word's "Insert and Link"); `hyperlink`: and a paragraph linking there."""
    blip = f'r:link="{LINK}"' + (f' r:embed="{EMBED}"' if embedded else "")
    body = _picture(blip)
    rels = _relationship(LINK, "image", url)
    change: dict[str, object] = {}
    if embedded:
        rels = rels.replace(b"</Relationships>", _relationship(EMBED, "image", "media/logo.png", external=False))
        change["word/media/logo.png"] = PNG
        change["[Content_Types].xml"] = lambda types: types.replace(
            b"<Default ", b'<Default Extension="png" ContentType="image/png"/><Default ', 1
        )
    if hyperlink:
        body += f'<w:p><w:hyperlink r:id="{SITE}"><w:r><w:t>our site</w:t></w:r></w:hyperlink></w:p>'
        rels = rels.replace(b"</Relationships>", _relationship(SITE, "hyperlink", hyperlink))
    change["word/document.xml"] = lambda xml: xml.replace(b"<w:body>", b"<w:body>" + body.encode(), 1)
    change["word/_rels/document.xml.rels"] = lambda xml: xml.replace(b"</Relationships>", rels)
    return edited(docx, change)


def part(docx: bytes, name: str) -> bytes:
    return zipfile.ZipFile(io.BytesIO(docx)).read(name)


def relationships(docx: bytes, name: str = "word/_rels/document.xml.rels") -> dict[str, dict[str, str]]:
    return {rel.get("Id"): dict(rel.attrib) for rel in etree.fromstring(part(docx, name))}


def test_a_document_that_links_nowhere_is_left_as_it_is():
    docx = letter()
    assert without_external_resources(docx) is docx


def test_a_picture_known_only_by_its_link_refuses_the_document_naming_the_part_and_the_relationship():
    docx = linked_picture(letter(), "http://127.0.0.1:9/logo.png")

    with pytest.raises(ExternalResource) as refused:
        without_external_resources(docx)

    message = str(refused.value)
    assert message.startswith(
        "word/document.xml: relationship rIdLogoLink (image) links to http://127.0.0.1:9/logo.png"
    )
    assert "embed it in the template" in message


def test_a_picture_linked_beside_its_embedded_copy_loses_the_link_and_keeps_the_copy_and_hyperlinks_stay():
    docx = linked_picture(letter(), "http://127.0.0.1:9/logo.png", embedded=True, hyperlink="https://example.org/")

    cleaned = without_external_resources(docx)

    rels = relationships(cleaned)
    assert LINK not in rels
    assert rels[EMBED]["Target"] == "media/logo.png"
    assert rels[SITE] == {
        "Id": SITE,
        "Type": f"{R}/hyperlink",
        "Target": "https://example.org/",
        "TargetMode": "External",
    }
    document = part(cleaned, "word/document.xml")
    assert b"r:link=" not in document and f'r:embed="{EMBED}"'.encode() in document
    assert f'<w:hyperlink r:id="{SITE}">'.encode() in document
    assert part(cleaned, "word/media/logo.png") == PNG
    untouched = set(zipfile.ZipFile(io.BytesIO(docx)).namelist()) - {
        "word/document.xml",
        "word/_rels/document.xml.rels",
    }
    assert all(part(cleaned, name) == part(docx, name) for name in untouched)


def test_a_picture_linked_in_a_header_is_refused_with_the_header_named():
    header = _picture(f'r:link="{LINK}"')
    docx = edited(
        letter(),
        {
            "word/header1.xml": lambda xml: xml.replace(b"</w:hdr>", header.encode() + b"</w:hdr>"),
            "word/_rels/header1.xml.rels": b'<?xml version="1.0" encoding="UTF-8"?>'
            b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            + _relationship(LINK, "image", "file:///etc/passwd"),
        },
    )

    with pytest.raises(
        ExternalResource, match=r"^word/header1.xml: relationship rIdLogoLink \(image\) links to file:///etc/passwd"
    ):
        without_external_resources(docx)


def test_an_attached_template_and_a_link_nothing_uses_are_dropped():
    settings_rels = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        + _relationship("rIdTemplate", "attachedTemplate", "file:///C:/Users/marie/Normal.dotm")
    )
    docx = edited(
        letter(),
        {
            "word/settings.xml": lambda xml: xml.replace(
                b"</w:settings>", f'<w:attachedTemplate xmlns:r="{R}" r:id="rIdTemplate"/></w:settings>'.encode()
            ),
            "word/_rels/settings.xml.rels": settings_rels,
            "word/_rels/document.xml.rels": lambda xml: xml.replace(
                b"</Relationships>", _relationship("rIdUnused", "oleObject", "http://127.0.0.1:9/sheet.xlsx")
            ),
        },
    )

    cleaned = without_external_resources(docx)

    assert relationships(cleaned, "word/_rels/settings.xml.rels") == {}
    assert b"attachedTemplate" not in part(cleaned, "word/settings.xml")
    assert "rIdUnused" not in relationships(cleaned)
    assert part(cleaned, "word/document.xml") == part(docx, "word/document.xml")


def test_what_is_not_a_readable_package_is_left_for_the_backend_to_refuse():
    assert without_external_resources(b"PK\x03\x04 not really a document") == b"PK\x03\x04 not really a document"
