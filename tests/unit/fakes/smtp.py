"""dispatch's senders in memory: each e-mail is answered as the test scripts it (taken, or refused with a
code), and kept, so a test reads what would have reached the SMTP server. A server given `permits` makes
each e-mail wait for one first, as an account's rate does: the test hands them out."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from publipost_dispatch.domain import SendWithdrawn
from publipost_dispatch.smtp import SmtpAccepted, SmtpRefused


@dataclass
class FakeSender:
    account: object
    server: "FakeSmtpServer"

    async def send(
        self,
        message: bytes,
        recipients: list[str],
        required: list[str],
        still_wanted: Callable[[], Awaitable[bool]] | None = None,
    ) -> SmtpAccepted:
        await self.server.permit()
        if still_wanted is not None and not await still_wanted():
            raise SendWithdrawn()
        return self.server.take(message, recipients)


@dataclass
class FakeSmtpServer:
    refuse_with: tuple[int, str] | None = None  # every e-mail refused with this code, when set...
    takes_anyway: tuple[str, ...] = ()  # ... but those to these addresses
    received: list[tuple[list[str], bytes]] = field(default_factory=list)
    refused: int = 0
    permits: asyncio.Semaphore | None = None  # when set, each e-mail waits for one (the test releases them)
    waiting: int = 0  # e-mails waiting for a permit

    async def permit(self) -> None:
        if self.permits is None:
            return
        self.waiting += 1
        try:
            await self.permits.acquire()
        finally:
            self.waiting -= 1

    def take(self, message: bytes, recipients: list[str]) -> SmtpAccepted:
        if self.refuse_with is not None and not set(recipients) & set(self.takes_anyway):
            self.refused += 1
            raise SmtpRefused(*self.refuse_with)
        self.received.append((recipients, message))
        return SmtpAccepted(reply="250 2.0.0 queued", refused={})


class FakeSenders:
    """What the send path asks of publipost_dispatch.senders.Senders."""

    holder = "replica-under-test"

    def __init__(self, server: FakeSmtpServer) -> None:
        self.server = server

    def for_account(self, account: object) -> FakeSender:
        return FakeSender(account, self.server)
