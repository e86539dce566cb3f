"""A Factur-X PDF: the factur-x library embeds the CII XML in a PDF/A-3 (as factur-x.xml, AFRelationship Data)
and writes the XMP that names the profile; `inspect_facturx` reads it back with pypdf, independently of the
library, since veraPDF is not at hand."""

import io
from dataclasses import dataclass

import facturx
from pypdf import PdfReader

from publipost_einvoice.cii import InvalidEInvoice
from publipost_einvoice.model import Profile

FACTURX_FILENAME = "factur-x.xml"


def embed_facturx(pdf: bytes, cii_xml: bytes, profile: Profile, *, lang: str = "fr-FR") -> bytes:
    """The Factur-X PDF of `pdf` (expected PDF/A-3) carrying `cii_xml`, checked against the profile's XSD."""
    try:
        return facturx.generate_from_binary(
            pdf, cii_xml, flavor="factur-x", level=profile.value, check_xsd=True, lang=lang
        )
    except Exception as error:  # the library raises a bare Exception carrying the schema's message
        raise InvalidEInvoice(str(error)) from error


@dataclass(frozen=True)
class FacturxInspection:
    """What an independent reader finds in a Factur-X PDF."""

    xmp: str
    embedded_names: list[str]
    af_relationships: dict[str, str]
    embedded_xml: bytes | None

    @property
    def conformance_level(self) -> str | None:
        """The profile the XMP declares (fx:ConformanceLevel), e.g. "EN 16931"."""
        for tag in ("fx:ConformanceLevel>", 'fx:ConformanceLevel="'):
            if tag in self.xmp:
                rest = self.xmp.split(tag, 1)[1]
                return rest.split("<" if tag.endswith(">") else '"', 1)[0]
        return None


def inspect_facturx(pdf: bytes) -> FacturxInspection:
    reader = PdfReader(io.BytesIO(pdf))
    root = reader.trailer["/Root"]
    metadata = root.get("/Metadata")
    xmp = metadata.get_object().get_data().decode("utf-8", "replace") if metadata else ""
    relationships = {}
    for spec in root.get("/AF", []):
        spec = spec.get_object()
        relationships[str(spec.get("/F"))] = str(spec.get("/AFRelationship"))
    attachments = reader.attachments
    embedded = attachments.get(FACTURX_FILENAME)
    return FacturxInspection(
        xmp=xmp,
        embedded_names=sorted(attachments),
        af_relationships=relationships,
        embedded_xml=embedded[0] if embedded else None,
    )


def xml_from_facturx(pdf: bytes) -> bytes:
    """The CII XML the factur-x library reads back from a Factur-X PDF."""
    _, xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    return xml
