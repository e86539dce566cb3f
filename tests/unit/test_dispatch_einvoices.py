"""Which files an invoice's e-mail carries: the mailing's format, unless the directory says otherwise for the
recipient, and the UBL XML beside the PDF, both named after the document number."""

import email
from email.policy import default

import pytest
from publipost_dispatch.domain import attachment_name, einvoice_format
from publipost_dispatch.mail import MESSAGE_BUILDERS, file_attachment, pdf_attachment


@pytest.mark.parametrize(
    ("mailing", "directory", "goes_as"),
    [
        ("facturx", None, "facturx"),  # no preference in the directory: the mailing's format
        ("pdf", "ubl", "ubl"),  # the recipient's preference wins
        ("ubl", "pdf", "pdf"),
        ("facturx", "docx", None),  # the DOCX, as for any document
        (None, "facturx", None),  # not an invoice mailing: nothing structured to send
    ],
)
def test_the_directorys_format_for_a_recipient_wins_over_the_mailings(mailing, directory, goes_as):
    assert einvoice_format(mailing, directory) == goes_as


@pytest.mark.parametrize("writer", sorted(MESSAGE_BUILDERS))
def test_a_ubl_invoice_goes_as_its_pdf_and_its_xml_named_after_the_document_number(writer):
    message = MESSAGE_BUILDERS[writer](
        sender="billing@example.com",
        to=["compta@garage-martin.fr"],
        cc=[],
        reply_to=None,
        subject="Invoice INV-123",
        body="Please find your invoice attached.\n",
        html_body=None,
        attachment=pdf_attachment(b"%PDF-1.7 plain", attachment_name("INV-123")),
        message_id="<m1@example.com>",
        also_attached=[file_attachment(b"<Invoice/>", attachment_name("INV-123", "xml"), "application/xml")],
    )
    parsed = email.message_from_bytes(message, policy=default)
    files = {part.get_filename(): (part.get_content_type(), part.get_content()) for part in parsed.iter_attachments()}
    assert files == {
        "INV-123.pdf": ("application/pdf", b"%PDF-1.7 plain"),
        "INV-123.xml": ("application/xml", b"<Invoice/>"),
    }
