import pytest
from publipost_dispatch.domain import UnknownVariable, UnsafeHeader, Verdict, check_header, fill, verdict_for_reply
from publipost_dispatch.mail import build_message


def test_4xx_is_retried_and_5xx_is_final():
    assert verdict_for_reply(451) is Verdict.RETRY
    assert verdict_for_reply(421) is Verdict.RETRY
    assert verdict_for_reply(550) is Verdict.FAILED
    assert verdict_for_reply(554) is Verdict.FAILED


def test_variables_are_filled_and_an_unknown_one_is_named():
    assert fill("subject", "Invoice {document_number} - {client_name}", {"document_number": "7", "client_name": "A"}) == (
        "Invoice 7 - A"
    )
    with pytest.raises(UnknownVariable, match=r"subject: unknown variable \{amount\}"):
        fill("subject", "Pay {amount}", {})


def test_a_line_break_in_a_header_is_refused_naming_the_header():
    with pytest.raises(UnsafeHeader, match="subject"):
        check_header("subject", "Hello\r\nBcc: victim@example.test")


def test_the_pdf_is_attached_under_the_document_number_and_bcc_stays_out_of_the_message():
    message = build_message(
        sender="Publipost <no-reply@publipost.test>",
        to=["a@example.test"],
        cc=["c@example.test"],
        reply_to=None,
        subject="Invoice 7",
        body="Hello",
        pdf=b"%PDF-1.4 fake",
        pdf_name="INV-7.pdf",
        message_id="<1@publipost.test>",
    )
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == "INV-7.pdf" and attachment.get_content_type() == "application/pdf"
    assert message["Cc"] == "c@example.test" and "Bcc" not in message
