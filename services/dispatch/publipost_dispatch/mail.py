"""The e-mail itself, written straight to bytes: headers, body, and the PDF attached under the document's number
(a plain e-mail to a segment's recipients attaches nothing).

Building an `EmailMessage` and serialising it costs about 4 ms, and that cost, not the network, bounds
a sender. The structure here never varies (multipart/mixed: the text, or text and HTML, then one PDF; without
an attachment, the text or the multipart/alternative alone), so
the message is assembled from parts each encoded by the standard library's own encoders (RFC 2047
headers, quoted-printable, base64, RFC 2231 file names), and the attachment part, base64 included, is
encoded once per document and reused by every e-mail of that document.

`build_message_with_email_package` writes the same message through `EmailMessage`
(PUBLIPOST_MIME_WRITER=email; docs/library-parity.md).
"""

import base64
import binascii
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import encode_rfc2231, formataddr, formatdate, quote

from .domain import check_header

CRLF = b"\r\n"


@dataclass(frozen=True)
class Attachment:
    filename: str
    part: bytes  # the MIME part: its headers, a blank line, the base64 lines
    pdf: bytes  # the document itself, for the standard library's writer
    content_type: str = "application/pdf"


DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XML_TYPE = "application/xml"


def pdf_attachment(pdf: bytes, filename: str) -> Attachment:
    return file_attachment(pdf, filename, "application/pdf")


def file_attachment(content: bytes, filename: str, content_type: str) -> Attachment:
    """The document as sent: its PDF, or its DOCX for a recipient who wants that document type so (or an
    invoice's UBL XML beside its PDF)."""
    check_header("attachment name", filename)
    if filename.isascii():
        params = f'name="{quote(filename)}"', f'filename="{quote(filename)}"'
    else:
        encoded = encode_rfc2231(filename, "utf-8")
        params = f"name*={encoded}", f"filename*={encoded}"
    head = (
        f"Content-Type: {content_type}; {params[0]}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment; {params[1]}\r\n\r\n"
    ).encode()
    return Attachment(filename, head + base64.encodebytes(content).replace(b"\n", CRLF), content, content_type)


def build_message(
    *,
    sender: str,
    to: list[str],
    cc: list[str],
    reply_to: str | None,
    subject: str,
    body: str,
    html_body: str | None,
    attachment: Attachment | None,
    message_id: str,
    also_attached: Sequence[Attachment] = (),
) -> bytes:
    """Without an attachment (a notice, a plain letter) the text alone is the body. Bcc recipients are given
    to SMTP only, never written into the message. Every header value is checked
    here once more (UnsafeHeader): whatever a caller let through, no control character reaches the wire."""
    headers = [
        _header("From", check_header("sender", sender)),
        _address_header("To", to),
    ]
    if cc:
        headers.append(_address_header("Cc", cc))
    if reply_to:
        headers.append(_header("Reply-To", check_header("reply_to", reply_to)))
    headers += [
        _header("Subject", check_header("subject", subject)),
        b"Date: " + formatdate(usegmt=True).encode(),
        b"Message-ID: " + check_header("message id", message_id).encode(),
        b"MIME-Version: 1.0",
    ]
    if html_body is None:
        text = _text_part(body, "plain")
    else:
        inner = _boundary()
        text = (
            b'Content-Type: multipart/alternative; boundary="' + inner + b'"\r\n\r\n'
            + _multipart(inner, [_text_part(body, "plain"), _text_part(html_body, "html")])
        )
    if attachment is None:  # the text part's own headers end the message's
        return CRLF.join(headers) + CRLF + text
    boundary = _boundary()
    headers.append(b'Content-Type: multipart/mixed; boundary="' + boundary + b'"')
    parts = [text, attachment.part, *(attached.part for attached in also_attached)]
    return CRLF.join(headers) + CRLF + CRLF + _multipart(boundary, parts)


def build_message_with_email_package(
    *,
    sender: str,
    to: list[str],
    cc: list[str],
    reply_to: str | None,
    subject: str,
    body: str,
    html_body: str | None,
    attachment: Attachment | None,
    message_id: str,
    also_attached: Sequence[Attachment] = (),
) -> bytes:
    """What build_message writes, built as an EmailMessage and serialised by the SMTP policy: the same
    headers, checked the same way, the same bodies and the same PDF (if any), encoded anew for every e-mail."""
    message = EmailMessage(policy=SMTP)
    message["From"] = check_header("sender", sender)
    message["To"] = ", ".join(check_header("to", address) for address in to)
    if cc:
        message["Cc"] = ", ".join(check_header("cc", address) for address in cc)
    if reply_to:
        message["Reply-To"] = check_header("reply_to", reply_to)
    message["Subject"] = check_header("subject", subject)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = check_header("message id", message_id)
    message["MIME-Version"] = "1.0"  # where build_message writes it (set_content would add it last)
    message.set_content(body, cte="quoted-printable")
    if html_body is not None:
        message.add_alternative(html_body, subtype="html", cte="quoted-printable")
    for attached in [attachment, *also_attached] if attachment is not None else []:
        maintype, subtype = attached.content_type.split("/")
        message.add_attachment(attached.pdf, maintype=maintype, subtype=subtype, filename=attached.filename)
    return message.as_bytes()


MessageBuilder = Callable[..., bytes]
# By PUBLIPOST_MIME_WRITER.
MESSAGE_BUILDERS: dict[str, MessageBuilder] = {"direct": build_message, "email": build_message_with_email_package}


def _multipart(boundary: bytes, parts: list[bytes]) -> bytes:
    # The line break before each delimiter belongs to the delimiter (RFC 2046), not to the part.
    out = b""
    for part in parts:
        out += b"--" + boundary + CRLF + part + CRLF
    return out + b"--" + boundary + b"--" + CRLF


def _boundary() -> bytes:
    # "=_" never occurs in base64 or quoted-printable text, so the boundary cannot appear in a part.
    return b"=_pp_" + secrets.token_hex(12).encode()


def _text_part(text: str, subtype: str) -> bytes:
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").encode()
    encoded = binascii.b2a_qp(normalised, istext=True).replace(b"\n", CRLF)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'.encode()
        + encoded
    )


def _header(name: str, value: str) -> bytes:
    if value.isascii() and len(value) + len(name) < 76:
        return f"{name}: {value}".encode()
    if name in ("From", "Reply-To"):
        return f"{name}: {_encoded_address(value)}".encode()
    return f"{name}: {Header(value, 'utf-8', header_name=name).encode(linesep=chr(13) + chr(10))}".encode()


def _encoded_address(value: str) -> str:
    """A display name outside ASCII is encoded; the address itself stays readable to the server."""
    name, _, rest = value.rpartition("<")
    if not rest:
        return value
    return formataddr((name.strip().strip('"'), rest.rstrip(">").strip()), charset="utf-8")


def _address_header(name: str, addresses: list[str]) -> bytes:
    """Long lists fold after each comma, so no line passes SMTP's limit."""
    lines, line = [], f"{name}:"
    for i, address in enumerate(addresses):
        piece = f" {check_header(name.lower(), address)}" + ("," if i < len(addresses) - 1 else "")
        if len(line) + len(piece) > 76 and line != f"{name}:":
            lines.append(line)
            line = ""
        line += piece
    lines.append(line)
    return "\r\n".join(lines).encode()
