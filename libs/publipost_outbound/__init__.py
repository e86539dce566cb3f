"""Where a service may connect when an admin chose the address: a tenant's SMTP server, its conversion backend.

Such an address is a way into the network Publipost runs in: a database's port, the cloud's metadata
service (169.254.169.254), a service listening on loopback. So a host an admin sets is resolved and every
address it resolves to must be public; loopback, private, link-local, shared (100.64/10), multicast and
the other ranges that are not global are refused unless `PUBLIPOST_OUTBOUND_ALLOW` lists them. The check
is made when the admin saves the address (a 422) and again at every connection, which then goes to the
very address that was checked: a name made to resolve elsewhere in between (DNS rebinding) gains nothing.

Addresses the platform team sets in the environment (`PUBLIPOST_SMTP_HOST`, `PUBLIPOST_GOTENBERG_URL`) are
theirs to choose and are not checked.

`PUBLIPOST_OUTBOUND_ALLOW` entries (JSON list):
- a network or address, `10.20.0.0/16`, `127.0.0.1`, `::1`: its addresses may be reached;
- a host name, `mail.internal.example`: that host, whatever it resolves to;
- `*.` and a domain, `*.svc.cluster.local`: every host under it.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SETTING = "PUBLIPOST_OUTBOUND_ALLOW"


class OutboundRefused(ValueError):
    """The address may not be reached from here; the message says why, for the admin who set it."""


class HostUnresolved(OutboundRefused):
    """The name does not resolve (now). Its message is a refusal's, so that an admin cannot tell an internal
    name from a missing one; a connection may take it as a passing failure and try again later."""


def _kind(address: IpAddress) -> str:
    """What a refused address is, in the admin's words: "a loopback address"."""
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            name = kind.replace("_", "-")
            return f"{'an' if name[0] in 'aeiou' else 'a'} {name} address"
    return "a non-public address"


def _embedded_ipv4(address: IpAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64): where the packets really go."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class OutboundPolicy:
    networks: tuple[IpNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()  # ".svc.cluster.local" for "*.svc.cluster.local"

    @classmethod
    def of(cls, allow: Iterable[str]) -> "OutboundPolicy":
        networks: list[IpNetwork] = []
        hosts: set[str] = set()
        domains: list[str] = []
        for entry in (e.strip().lower() for e in allow):
            if not entry:
                continue
            if entry.startswith("*."):
                domains.append(entry[1:])
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(tuple(networks), frozenset(hosts), tuple(domains))

    def _host_allowed(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.hosts or any(name.endswith(domain) for domain in self.domains)

    def address_problem(self, address: IpAddress) -> str | None:
        """Why `address` may not be reached (None when it may)."""
        if any(address in network for network in self.networks):
            return None
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            if any(embedded in network for network in self.networks):
                return None
            if not embedded.is_global:
                return f"{address} carries {embedded}, {_kind(embedded)}"
        if not address.is_global or address.is_multicast:
            return f"{address} is {_kind(address)}"
        return None

    async def addresses(self, host: str, port: int) -> list[tuple[int, Any]]:
        """The (family, socket address) pairs `host` resolves to, every one allowed; OutboundRefused else.

        A name that does not resolve and a name that resolves to a refused address get the same answer:
        the difference would tell an admin which internal names exist."""
        literal = _literal(host)
        if literal is not None:
            problem = self.address_problem(literal)
            if problem is not None:
                raise OutboundRefused(f"{problem}: {_REFUSED} unless {SETTING} lists it")
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise HostUnresolved(_not_public(host)) from exc
        if not found:
            raise HostUnresolved(_not_public(host))
        if literal is None and not self._host_allowed(host):
            for *_, sockaddr in found:
                if self.address_problem(ipaddress.ip_address(sockaddr[0].split("%")[0])) is not None:
                    raise OutboundRefused(_not_public(host))
        return [(family, sockaddr) for family, _, _, _, sockaddr in found]

    async def check(self, host: str, port: int) -> None:
        """OutboundRefused unless `host` may be reached (what a route calls when an admin saves it). A host
        the allow-list names is accepted as it is, even before it resolves (a service not deployed yet)."""
        if _literal(host) is None and self._host_allowed(host):
            return
        await self.addresses(host, port)

    async def check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutboundRefused(f"{url!r} is not an http or https URL")
        await self.check(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))

    async def connect(self, host: str, port: int, timeout_s: float) -> socket.socket:
        """A connected, non-blocking socket to one of the checked addresses of `host`."""
        last: Exception | None = None
        for family, sockaddr in await self.addresses(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, sockaddr), timeout_s)
            except (OSError, TimeoutError) as exc:
                sock.close()
                last = exc
                continue
            return sock
        raise ConnectionError(f"cannot connect to {host}:{port}: {last or 'no address'}")

    def http_client(self, **options: Any) -> httpx.AsyncClient:
        """An httpx client that connects only to checked addresses, and never through a proxy named in the
        environment (a proxy would connect for us, wherever the URL says)."""
        return httpx.AsyncClient(transport=_CheckedTransport(self), trust_env=False, **options)


_REFUSED = "private, loopback and link-local addresses are refused"


def _not_public(host: str) -> str:
    return f"{host!r} does not resolve to a public address: {_REFUSED} unless {SETTING} lists them"


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


class _CheckedNetwork(httpcore.AsyncNetworkBackend):
    """httpcore's network, connecting to an address the policy checked; TLS still names the URL's host."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._policy.addresses(host, port)
        except OutboundRefused as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for _, sockaddr in addresses:
            try:
                return await self._network.connect_tcp(
                    sockaddr[0], port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("no unix sockets for an address an admin set")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: OutboundPolicy, *, verify: bool = True, **options: Any) -> None:
        super().__init__(verify=verify, trust_env=False, **options)
        # httpx builds its pool without a way to give it a network backend; this one is the same pool with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            network_backend=_CheckedNetwork(policy),
        )


def refusal_message(exc: BaseException) -> str | None:
    """The OutboundRefused message behind an httpx or httpcore error, if that is what it is."""
    while exc is not None:
        if isinstance(exc, OutboundRefused):
            return str(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


__all__ = ["HostUnresolved", "OutboundPolicy", "OutboundRefused", "refusal_message"]
