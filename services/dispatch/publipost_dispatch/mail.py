"""The e-mail itself: headers, body and the PDF attached under the document's number."""

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

from .domain import check_header


def build_message(
    *,
    sender: str,
    to: list[str],
    cc: list[str],
    reply_to: str | None,
    subject: str,
    body: str,
    pdf: bytes,
    pdf_name: str,
    message_id: str,
) -> EmailMessage:
    """Bcc recipients are given to SMTP only, never written into the message."""
    message = EmailMessage(policy=SMTP)
    message["From"] = check_header("sender", sender)
    message["To"] = check_header("to", ", ".join(to))
    if cc:
        message["Cc"] = check_header("cc", ", ".join(cc))
    if reply_to:
        message["Reply-To"] = check_header("reply_to", reply_to)
    message["Subject"] = check_header("subject", subject)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id
    message.set_content(body)
    message.add_attachment(
        pdf, maintype="application", subtype="pdf", filename=check_header("attachment name", pdf_name)
    )
    return message
