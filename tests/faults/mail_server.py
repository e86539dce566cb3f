"""The SMTP server of a fault scenario: counts each Message-ID it receives, and misbehaves when told to.

Modes, switched while a mailing runs:
- `normal`: 250 to everything; a message counts as received once its final dot is read;
- `refuse_421`: "421 service not available" to MAIL FROM, then the connection is closed (a server
  shedding load);
- `drop`: the connection is closed at MAIL FROM without a word (a server or a firewall dropping it);
- `hang`: the whole message is read (so it counts as received, and may well be delivered) and then
  nothing is answered, ever: the client gives up on its own timeout.
"""

import asyncio
import re
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from publipost_localstack.processes import free_port

MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
MODES = ("normal", "refuse_421", "drop", "hang")


class FaultyMailHandler:
    def __init__(self) -> None:
        self.mode = "normal"
        self._lock = threading.Lock()
        self.received: list[tuple[float, float, str]] = []  # (monotonic time, wall clock, Message-ID), every copy
        self.refused = 0  # transactions answered 421 or dropped
        self.save_dir: Path | None = None  # where each message is kept as a .eml file, for a person to look at

    def set_mode(self, mode: str) -> None:
        assert mode in MODES, mode
        self.mode = mode

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if self.mode in ("refuse_421", "drop"):
            with self._lock:
                self.refused += 1
            if self.mode == "refuse_421":
                await server.push("421 4.3.2 Service not available, closing transmission channel")
            assert server.transport is not None
            server.transport.close()
            await _forever()  # cancelled by aiosmtpd as the connection goes
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        found = MESSAGE_ID.search(content.split(b"\r\n\r\n", 1)[0])
        with self._lock:
            message_id = found.group(1).decode() if found else "(no Message-ID)"
            self.received.append((time.monotonic(), time.time(), message_id))
            sequence = len(self.received)
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            (self.save_dir / f"{time.time_ns()}-{sequence:06d}.eml").write_bytes(content)
        if self.mode == "hang":
            await _forever()
        return "250 2.0.0 Message accepted"

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def arrivals(self) -> list[tuple[float, float, str]]:
        with self._lock:
            return list(self.received)


async def _forever() -> None:
    await asyncio.sleep(24 * 3600)


class MailServer:
    """An aiosmtpd server on a thread of its own, so a stalled test loop never stalls it."""

    def __init__(self) -> None:
        self.handler = FaultyMailHandler()
        self.port = free_port()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, data_size_limit=50_000_000)

    def start(self) -> "MailServer":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
