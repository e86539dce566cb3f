"""render-pdf's Factur-X: LibreOffice's PDF/A-3 export, the invoice's CII embedded by the factur-x library, and
what an independent reader (pypdf) finds in it: the PDF/A-3 and Factur-X XMP, factur-x.xml with its
AFRelationship, and the very XML that went in."""

from pathlib import Path

import pytest
from publipost_einvoice import Profile, build_cii, embed_facturx, inspect_facturx, read_invoice, xml_from_facturx

from tests.unit.test_einvoice import INVOICE

LETTER = Path(__file__).resolve().parents[2] / "samples" / "letter.docx"


@pytest.mark.slow
async def test_an_invoice_converted_to_pdf_a_3_carries_its_cii_as_factur_x(libreoffice):
    docx = LETTER.read_bytes()
    plain = await libreoffice.convert(docx)
    pdfa = await libreoffice.convert(docx, pdfa=True)
    cii = build_cii(read_invoice(INVOICE, profile=Profile.BASIC), Profile.BASIC)

    facturx = embed_facturx(pdfa, cii, Profile.BASIC)

    assert "pdfaid:part" not in inspect_facturx(plain).xmp
    assert "pdfaid:part" in inspect_facturx(pdfa).xmp  # LibreOffice's own PDF/A XMP, before the library's
    seen = inspect_facturx(facturx)
    assert 'pdfaid:part="3"' in seen.xmp or "<pdfaid:part>3</pdfaid:part>" in seen.xmp
    assert seen.conformance_level == "BASIC"
    assert seen.af_relationships == {"factur-x.xml": "/Data"}
    assert seen.embedded_xml == cii
    assert xml_from_facturx(facturx) == cii
