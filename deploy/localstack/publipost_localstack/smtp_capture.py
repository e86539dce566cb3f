"""An SMTP server for development and tests: stores every message as a .eml file, rejects chosen addresses.

Recipients whose domain is in `reject_domains` get a permanent 550, the way a
real server answers for a mailbox that does not exist.
"""

import argparse
import itertools
import time
from collections.abc import Iterable
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

DEFAULT_REJECT_DOMAINS = ("reject.test",)


class CaptureHandler:
    def __init__(self, mail_dir: Path, reject_domains: Iterable[str] = DEFAULT_REJECT_DOMAINS) -> None:
        self.mail_dir = mail_dir
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self.reject_domains = {d.lower() for d in reject_domains}
        self._sequence = itertools.count(1)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain in self.reject_domains:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
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
    mail_dir: Path, host: str = "127.0.0.1", port: int = 2525, reject_domains: Iterable[str] = DEFAULT_REJECT_DOMAINS
) -> Controller:
    """Start the server on a background thread; `.stop()` the returned controller to end it."""
    controller = Controller(
        CaptureHandler(mail_dir, reject_domains), hostname=host, port=port, data_size_limit=50_000_000
    )
    controller.start()
    return controller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, required=True, help="folder that receives one .eml per message")
    parser.add_argument("--reject-domain", action="append", default=None, help="repeatable; default reject.test")
    args = parser.parse_args()
    controller = start_capture(args.dir, args.host, args.port, args.reject_domain or DEFAULT_REJECT_DOMAINS)
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
