"""The adapter that talks SMTP: one pool of open connections per account, bounded across replicas, and
errors sorted by what they mean."""

import asyncio
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosmtplib
from publipost_logging import get_logger
from publipost_outbound import HostUnresolved, OutboundPolicy, OutboundRefused
from publipost_storage import UNREACHABLE

from .domain import Account, SendWithdrawn, TlsMode
from .repository import ConnectionLeaseRepository

log = get_logger(__name__)

LEASE_RETRY_S = 0.5  # how soon a replica that found every connection slot taken asks the database again
# ... when it already has a connection of the account: its sends are going, and each try costs the
# database a read and a write (every 0.5 s, two busy replicas kept taking and giving back slots).
MORE_RETRY_S = 2.0
SHARE_CHECK_S = 0.5  # how stale a replica's view of who else waits for the account's connections may be


class SmtpRefused(Exception):
    """The server answered with a refusal code (4xx temporary, 5xx permanent); `recipient` when it refused
    that address (RCPT TO) rather than the message."""

    def __init__(self, code: int, text: str, recipient: str | None = None) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text
        self.recipient = recipient

    @property
    def address_refused(self) -> bool:
        return self.recipient is not None and self.code >= 500


class SmtpHostRefused(SmtpRefused):
    """The account's server may not be reached from here (a private address, say: publipost_outbound). Final,
    like a 5xx: trying again reaches the same address."""

    def __init__(self, reason: str) -> None:
        Exception.__init__(self, f"the account's server is refused: {reason}")
        self.code = 554
        self.text = reason
        self.recipient = None


class SmtpUnavailable(Exception):
    """No answer from the server: connection refused, dropped, timed out, TLS failed. Worth retrying."""


class SmtpUncertain(Exception):
    """The whole message went out, final dot included, and the server never answered it (silence or a
    dropped connection): it may have been delivered. Never worth retrying: a retry could deliver it twice."""


@dataclass(frozen=True)
class SmtpAccepted:
    reply: str
    refused: dict[str, str]  # copies (a CC, say) the server refused while it took the e-mail for the others


@dataclass
class _Connection:
    client: aiosmtplib.SMTP
    slot: int
    last_used: float


class SmtpPool:
    """Connections to one account's server. A replica opens one only while it holds one of the account's
    connection slots in the database, so the account's limit holds across every replica. The slots are
    shared: while other replicas wait for one, a replica keeps no more than its share, and gives back a
    connection above it as soon as a send is done with it (else the first replica to start would keep
    them all while the others' sends wait)."""

    def __init__(
        self,
        account: Account,
        *,
        timeout_s: float,
        leases: ConnectionLeaseRepository,
        holder: str,
        lease_s: float,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        self.account = account
        # An account a tenant's admin set connects only to an address its outbound policy allows, the one it
        # checked (None: the service's own server, from the environment).
        self._outbound = outbound
        self._timeout_s = timeout_s
        self._options = {
            "hostname": account.host,
            "port": None if outbound else account.port,
            "timeout": timeout_s,
            "use_tls": account.tls is TlsMode.TLS,
            "start_tls": account.tls is TlsMode.STARTTLS,  # never opportunistic: "none" means plain text
            "validate_certs": account.verify_certificate,
            "username": account.login,
            "password": account.password,
        }
        self._leases = leases
        self._holder = holder
        self._lease_s = lease_s
        self._idle: list[_Connection] = []
        self._open = 0
        self._slots: set[int] = set()  # the account's slots this pool has a connection on
        self._lease_retry_at = 0.0
        self._changed = asyncio.Condition()
        self._share = account.limits.connections
        self._share_checked_at = 0.0

    def held_slots(self) -> list[str]:
        """The slots to keep: this pool's open connections' (renewed by Senders)."""
        return [self._leases.slot_id(self.account.account_id, slot) for slot in self._slots]

    async def _acquire(self) -> _Connection:
        while True:
            async with self._changed:
                while self._idle:
                    connection = self._idle.pop()
                    if connection.client.is_connected:
                        return connection
                    await self._forget(connection)
                # Within its share: a connection given back for being above it is not opened again at once.
                may_open = self._open < self._share and time.monotonic() >= self._lease_retry_at
                if may_open:
                    self._open += 1  # counted now, so others waiting here do not ask the database too
                else:
                    try:  # wait for one of ours, or look for a free slot again shortly
                        await asyncio.wait_for(self._changed.wait(), timeout=LEASE_RETRY_S)
                    except TimeoutError:
                        pass
                    continue
            try:
                slot = await self._leases.acquire(
                    self.account.account_id, self.account.limits.connections, self._holder, self._lease_s
                )
            except BaseException:
                # The database out of reach, or the send cancelled: nothing was opened. Left counted, it
                # was never given back, and at the account's limit every later send waited forever.
                self._open -= 1
                raise
            if slot is not None:
                return await self._connect(slot)
            async with self._changed:  # every slot is another replica's: ours will have to do for now
                self._open -= 1
                self._lease_retry_at = time.monotonic() + (MORE_RETRY_S if self._open else LEASE_RETRY_S)
            await self._leases.wait(self.account.account_id, self._holder, 2 * LEASE_RETRY_S)

    async def _connect(self, slot: int) -> _Connection:
        client = aiosmtplib.SMTP(**self._options)
        host, port = self.account.host, self.account.port
        try:
            if self._outbound is None:
                await client.connect()
            else:  # to the very address the policy checked, not to whatever the name resolves to next
                await client.connect(sock=await self._outbound.connect(host, port, self._timeout_s))
        except HostUnresolved as exc:
            await self._give_back(_Connection(client, slot, 0.0), broken=True)
            raise SmtpUnavailable(f"cannot connect to {host}:{port}: the name does not resolve") from exc
        except OutboundRefused as exc:
            await self._give_back(_Connection(client, slot, 0.0), broken=True)
            raise SmtpHostRefused(str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            await self._give_back(_Connection(client, slot, 0.0), broken=True)
            if exc.code >= 400:  # a login refused (535), a greeting refused (554)
                raise SmtpRefused(exc.code, exc.message) from exc
            raise SmtpUnavailable(f"cannot connect to {host}:{port}: {exc}") from exc
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            await self._give_back(_Connection(client, slot, 0.0), broken=True)
            raise SmtpUnavailable(f"cannot connect to {host}:{port}: {exc}") from exc
        except BaseException:  # cancelled while connecting: the slot goes back (see send)
            await asyncio.shield(self._give_back(_Connection(client, slot, 0.0), broken=True))
            raise
        self._slots.add(slot)
        return _Connection(client, slot, time.monotonic())

    async def _give_back(self, connection: _Connection, *, broken: bool) -> None:
        """Never fails for the database (see _fair_share, _forget): after a send, an error here once turned
        an e-mail the server took into a retry, and so into a second copy."""
        above_share = not broken and self._open > await self._fair_share()
        async with self._changed:
            if broken:
                await self._forget(connection)
            elif above_share:
                await _quit(connection.client)
                await self._forget(connection)
            else:
                connection.last_used = time.monotonic()
                self._idle.append(connection)
            self._changed.notify()

    async def _fair_share(self) -> int:
        """The account's connections divided among this replica and those waiting for one (at least one)."""
        now = time.monotonic()
        if now - self._share_checked_at >= SHARE_CHECK_S:
            self._share_checked_at = now
            try:
                waiting = await self._leases.others_waiting(self.account.account_id, self._holder)
            except UNREACHABLE:
                return self._share  # the last one known; asked again at the next check
            self._share = max(1, self.account.limits.connections // (waiting + 1))
        return self._share

    async def _forget(self, connection: _Connection) -> None:
        connection.client.close()
        self._open -= 1
        self._slots.discard(connection.slot)  # no longer renewed: a release that fails now lapses on its own
        try:
            await self._leases.release(self.account.account_id, connection.slot, self._holder)
        except UNREACHABLE as exc:
            log.warning("connection slot not given back; its lease will lapse", error=str(exc))

    async def send(
        self,
        message: bytes,
        sender: str,
        recipients: list[str],
        required: list[str],
        still_wanted: Callable[[], Awaitable[bool]] | None = None,
    ) -> SmtpAccepted:
        """One SMTP transaction. If the server refuses a required recipient, the transaction is abandoned
        before DATA: the document reaches its recipient or nobody, never only its copies. `still_wanted` is
        asked last, once the connection is ours, right before the transaction: SendWithdrawn when it says no."""
        connection = await self._acquire()
        client = connection.client
        try:
            if still_wanted is not None and not await still_wanted():
                raise SendWithdrawn()
            await client.mail(sender)
            refused: dict[str, str] = {}
            for recipient in recipients:
                try:
                    await client.rcpt(recipient)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    if recipient in required:
                        raise SmtpRefused(exc.code, f"<{recipient}>: {exc.message}", recipient) from exc
                    refused[recipient] = f"{exc.code} {exc.message}"
            response = await _transmit(client, message)
        except SendWithdrawn:
            await self._give_back(connection, broken=False)  # nothing was said on it
            raise
        except (SmtpRefused, SmtpUncertain):
            await self._give_back(connection, broken=True)
            raise
        except aiosmtplib.SMTPResponseException as exc:
            await self._give_back(connection, broken=True)
            if exc.code < 400:  # a dropped connection reported with a pseudo-code
                raise SmtpUnavailable(str(exc)) from exc
            raise SmtpRefused(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._give_back(connection, broken=True)
            raise SmtpUnavailable(str(exc)) from exc
        except BaseException:
            # Cancelled mid-transaction (a consumer's tasks are cancelled when its broker connection drops),
            # or an error of no kind above: the connection's state is unknown, so it is closed and its slot
            # given back. It used to stay counted open: at the account's limit every later send waited for
            # it forever, and a 10 s broker cut stopped dispatch until a restart.
            await asyncio.shield(self._give_back(connection, broken=True))
            raise
        await self._give_back(connection, broken=False)
        return SmtpAccepted(f"{response.code} {response.message}", refused)

    async def probe(self) -> str:
        """Connect, say hello, upgrade to TLS and log in as a send would; the server's answer to NOOP."""
        connection = await self._acquire()
        try:
            response = await connection.client.noop()
        except aiosmtplib.SMTPResponseException as exc:
            await self._give_back(connection, broken=True)
            raise SmtpRefused(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._give_back(connection, broken=True)
            raise SmtpUnavailable(str(exc)) from exc
        except BaseException:  # cancelled: see send
            await asyncio.shield(self._give_back(connection, broken=True))
            raise
        await self._give_back(connection, broken=False)
        return f"{response.code} {response.message}"

    async def close_idle(self, idle_s: float) -> None:
        """Give idle connections (and their slots) back, so another replica with work can use them."""
        async with self._changed:
            now = time.monotonic()
            keep = [c for c in self._idle if now - c.last_used < idle_s]
            for connection in self._idle:
                if connection not in keep:
                    await _quit(connection.client)
                    await self._forget(connection)
            self._idle = keep
            self._changed.notify_all()

    async def close(self) -> None:
        await self.close_idle(0.0)


LINE_START_PERIOD = re.compile(rb"(?m)^\.")


async def _transmit(client: aiosmtplib.SMTP, message: bytes) -> aiosmtplib.SMTPResponse:
    """DATA, the message, its final dot and the server's answer. aiosmtplib's data() does the same in one
    call, which hides whether a timeout or a dropped connection came before the message went out (nothing
    delivered: worth retrying) or after it (maybe delivered): this tells them apart. `message` is ours
    (mail.py), already with CRLF line endings."""
    start = await client.execute_command(b"DATA")
    if start.code != 354:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost before the message was sent")
    data = LINE_START_PERIOD.sub(b"..", message)
    data += b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n"
    try:
        protocol.write(data)
        response = await protocol.read_response(timeout=client.timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
        client.close()
        raise SmtpUncertain(
            f"the server took the message and then {'did not answer' if isinstance(exc, aiosmtplib.SMTPTimeoutError) else 'hung up'} "
            "before confirming it: it may have been delivered"
        ) from exc
    if response.code != 250:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
