"""An SMTP server for development and tests: stores every message as a .eml file, rejects chosen addresses.

Recipients whose domain is in `reject_domains` get a permanent 550, the way a
real server answers for a mailbox that does not exist. Recipients whose domain
is in `tempfail_domains` get a temporary 451 the first time they are named and
250 afterwards, the way a greylisting server answers. With `require_starttls`
the server offers STARTTLS (a self-signed certificate made on the spot) and
answers 530 to anything else until the client upgrades.
"""

import argparse
import itertools
import ssl
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

DEFAULT_REJECT_DOMAINS = ("reject.test",)
DEFAULT_TEMPFAIL_DOMAINS = ("tempfail.test",)


class CaptureHandler:
    def __init__(
        self,
        mail_dir: Path,
        reject_domains: Iterable[str] = DEFAULT_REJECT_DOMAINS,
        tempfail_domains: Iterable[str] = DEFAULT_TEMPFAIL_DOMAINS,
    ) -> None:
        self.mail_dir = mail_dir
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self.reject_domains = {d.lower() for d in reject_domains}
        self.tempfail_domains = {d.lower() for d in tempfail_domains}
        self._deferred: set[str] = set()
        self._sequence = itertools.count(1)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain in self.reject_domains:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        if domain in self.tempfail_domains and address.lower() not in self._deferred:
            self._deferred.add(address.lower())
            return f"451 4.7.1 <{address}>: greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        name = f"{time.time_ns()}-{next(self._sequence):06d}.eml"
        header = f"X-Capture-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        partial = self.mail_dir / f".{name}.part"
        partial.write_bytes(header + content)
        partial.rename(self.mail_dir / name)  # readers never see half a message
        return "250 2.0.0 Message accepted"


def start_capture(
    mail_dir: Path,
    host: str = "127.0.0.1",
    port: int = 2525,
    reject_domains: Iterable[str] = DEFAULT_REJECT_DOMAINS,
    tempfail_domains: Iterable[str] = DEFAULT_TEMPFAIL_DOMAINS,
    require_starttls: bool = False,
) -> Controller:
    """Start the server on a background thread; `.stop()` the returned controller to end it."""
    tls = {}
    if require_starttls:
        tls = {"tls_context": _self_signed_context(mail_dir.parent / f".{mail_dir.name}-tls"), "require_starttls": True}
    controller = Controller(
        CaptureHandler(mail_dir, reject_domains, tempfail_domains),
        hostname=host,
        port=port,
        data_size_limit=50_000_000,
        **tls,
    )
    controller.start()
    return controller


def _self_signed_context(folder: Path) -> ssl.SSLContext:
    """A certificate for 127.0.0.1 and localhost, made by the openssl command line (clients must not verify it)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not cert.exists():
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, required=True, help="folder that receives one .eml per message")
    parser.add_argument("--reject-domain", action="append", default=None, help="repeatable; default reject.test")
    parser.add_argument("--tempfail-domain", action="append", default=None, help="repeatable; default tempfail.test")
    parser.add_argument("--require-starttls", action="store_true", help="refuse all but STARTTLS until upgraded")
    args = parser.parse_args()
    controller = start_capture(
        args.dir,
        args.host,
        args.port,
        args.reject_domain or DEFAULT_REJECT_DOMAINS,
        args.tempfail_domain or DEFAULT_TEMPFAIL_DOMAINS,
        args.require_starttls,
    )
    print(f"SMTP capture on {args.host}:{args.port}, storing into {args.dir}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
