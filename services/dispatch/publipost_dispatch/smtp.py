"""The adapter that talks SMTP: a small pool of open connections, and errors sorted by what they mean."""

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib


class SmtpRefused(Exception):
    """The server answered with a refusal code (4xx temporary, 5xx permanent)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class SmtpUnavailable(Exception):
    """No answer from the server: connection refused, dropped, timed out. Worth retrying."""


@dataclass(frozen=True)
class SmtpAccepted:
    reply: str
    refused: dict[str, str]  # some recipients (a CC, say) refused while others accepted


class SmtpPool:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        size: int,
        timeout_s: float,
        starttls: bool,
        username: str | None,
        password: str | None,
    ) -> None:
        self._options = {
            "hostname": host,
            "port": port,
            "timeout": timeout_s,
            "start_tls": starttls,
            "use_tls": False,
            "username": username,
            "password": password,
        }
        self._slots = asyncio.Semaphore(size)
        self._idle: list[aiosmtplib.SMTP] = []

    async def _connection(self) -> aiosmtplib.SMTP:
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client
        client = aiosmtplib.SMTP(**self._options)
        await client.connect()
        return client

    async def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> SmtpAccepted:
        async with self._slots:
            try:
                client = await self._connection()
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise SmtpUnavailable(f"cannot connect to the SMTP server: {exc}") from exc
            try:
                refused, reply = await client.send_message(message, sender=sender, recipients=recipients)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                first = exc.recipients[0]
                await _close(client)
                raise SmtpRefused(first.code, f"<{first.recipient}>: {first.message}") from exc
            except aiosmtplib.SMTPResponseException as exc:
                await _close(client)
                if exc.code < 400:  # e.g. a dropped connection reported with a pseudo-code
                    raise SmtpUnavailable(str(exc)) from exc
                raise SmtpRefused(exc.code, exc.message) from exc
            except (aiosmtplib.SMTPException, OSError) as exc:
                await _close(client)
                raise SmtpUnavailable(str(exc)) from exc
            self._idle.append(client)
            return SmtpAccepted(reply, {addr: f"{code} {text}" for addr, (code, text) in refused.items()})

    async def close(self) -> None:
        while self._idle:
            await _close(self._idle.pop())


async def _close(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
