"""mail.py writes e-mails straight to bytes; the standard library's EmailMessage (PUBLIPOST_MIME_WRITER=email)
must give a reader the same message: headers, bodies, attachment name and bytes."""

import email.policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from publipost_dispatch.mail import DOCX_TYPE, MESSAGE_BUILDERS, file_attachment, pdf_attachment

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 120 + b"\n%%EOF\n"
DOCX = b"PK\x03\x04" + bytes(range(256)) * 40

MESSAGES = {
    "plain ascii": {
        "sender": "no-reply@publipost.test",
        "to": ["a@example.test"],
        "cc": [],
        "reply_to": None,
        "subject": "Invoice INV-0001",
        "body": "Dear client,\nplease find your invoice attached.\n",
        "html_body": None,
        "filename": "INV-0001.pdf",
    },
    "accents, html, long lists": {
        "sender": "Société Générale <no-reply@publipost.test>",
        "to": [f"to{n}@example.test" for n in range(9)],
        "cc": [f"cc{n}@example.test" for n in range(14)],
        "reply_to": "Service clients <replies@publipost.test>",
        "subject": "Facture INV-7 — échéance du mois prochain, merci de votre confiance renouvelée " * 2,
        "body": "Bonjour,\r\nvotre facture est jointe.\rÀ bientôt\n" + "une ligne très longue " * 20,
        "html_body": "<p>Bonjour</p>\n<p>Votre facture est jointe : <b>INV-7</b>.</p>",
        "filename": "Facture n° 7 (copie).pdf",
    },
    "a DOCX for a client who wants the document so": {
        "sender": "no-reply@publipost.test",
        "to": ["a@example.test"],
        "cc": [],
        "reply_to": None,
        "subject": "Invoice INV-0002",
        "body": "Dear client,\nplease find your invoice attached.\n",
        "html_body": None,
        "filename": "INV-0002.docx",
    },
}


# A plain e-mail to a segment's recipients (issue 16, point 10): the text alone, or text and HTML.
PLAIN_EMAILS = {
    "text alone": {**MESSAGES["plain ascii"], "subject": "Your car's inspection is due", "filename": None},
    "text and html": {**MESSAGES["accents, html, long lists"], "filename": None},
}


def _parsed(writer: str, fields: dict[str, object]) -> EmailMessage:
    fields = dict(fields)
    filename = fields.pop("filename")
    if filename is None:
        attachment = None
    elif str(filename).endswith(".docx"):
        attachment = file_attachment(DOCX, str(filename), DOCX_TYPE)
    else:
        attachment = pdf_attachment(PDF, str(filename))
    raw = MESSAGE_BUILDERS[writer](**fields, attachment=attachment, message_id="<7.0@publipost.test>")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998  # SMTP's line limit
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    return BytesParser(policy=email.policy.default).parsebytes(raw)


def _seen(message: EmailMessage) -> dict[str, object]:
    """What a mail client shows of a message."""
    attachments = list(message.iter_attachments())
    html = message.get_body(("html",))
    return {
        "headers": [(name, str(value)) for name, value in message.items() if name not in ("Date", "Content-Type")],
        "type": message.get_content_type(),
        # EmailMessage ends a body with a line break if it has none; nothing a reader sees.
        "plain": message.get_body(("plain",)).get_content().replace("\r\n", "\n").removesuffix("\n"),
        "html": None if html is None else html.get_content().replace("\r\n", "\n").strip(),
        "attachments": [(a.get_filename(), a.get_content_type(), a.get_content()) for a in attachments],
        "defects": [part.defects for part in message.walk() if part.defects],
    }


@pytest.mark.parametrize("case", MESSAGES)
def test_the_direct_writer_and_email_message_give_the_same_message(case):
    direct, library = _parsed("direct", MESSAGES[case]), _parsed("email", MESSAGES[case])

    assert _seen(direct) == _seen(library)
    [(filename, content_type, content)] = _seen(direct)["attachments"]
    assert (content_type, content) == ((DOCX_TYPE, DOCX) if filename.endswith(".docx") else ("application/pdf", PDF))
    assert "Bcc" not in direct and "Bcc" not in library


@pytest.mark.parametrize("case", PLAIN_EMAILS)
def test_a_plain_e_mail_carries_no_attachment_and_both_writers_agree(case):
    direct, library = _parsed("direct", PLAIN_EMAILS[case]), _parsed("email", PLAIN_EMAILS[case])

    assert _seen(direct) == _seen(library)
    assert _seen(direct)["attachments"] == [] and _seen(direct)["defects"] == []
    expected = "text/plain" if PLAIN_EMAILS[case]["html_body"] is None else "multipart/alternative"
    assert direct.get_content_type() == library.get_content_type() == expected  # no multipart/mixed around it
