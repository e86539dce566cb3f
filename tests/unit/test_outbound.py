"""Where an address an admin sets may lead (publipost_outbound): public addresses, and what the allow-list adds."""

import asyncio
import ipaddress
import socket

import httpx
import pytest
from publipost_outbound import HostUnresolved, OutboundPolicy, OutboundRefused


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback"),
        ("::1", "a loopback"),
        ("10.1.2.3", "a private"),
        ("192.168.0.10", "a private"),
        ("172.16.5.4", "a private"),
        ("169.254.169.254", "a link-local"),  # the cloud's metadata service
        ("fe80::1", "a link-local"),
        ("fd00::1", "a private"),
        ("0.0.0.0", "an unspecified"),
        ("100.64.0.1", "a non-public"),  # carrier-grade NAT
        ("224.0.0.1", "a multicast"),
    ],
)
def test_addresses_that_are_not_public_are_refused_naming_what_they_are(address, kind):
    problem = OutboundPolicy.of([]).address_problem(ipaddress.ip_address(address))
    assert problem == f"{ipaddress.ip_address(address)} is {kind} address"


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "2002:7f00:1::1", "64:ff9b::a9fe:a9fe"])
def test_an_ipv6_address_carrying_a_refused_ipv4_one_is_refused(address):
    problem = OutboundPolicy.of([]).address_problem(ipaddress.ip_address(address))
    assert problem is not None and " carries " in problem


def test_public_addresses_pass_and_the_allow_list_opens_networks():
    strict = OutboundPolicy.of([])
    assert strict.address_problem(ipaddress.ip_address("93.184.216.34")) is None
    assert strict.address_problem(ipaddress.ip_address("2606:2800:220:1::1")) is None
    allowing = OutboundPolicy.of(["127.0.0.0/8", "10.20.0.0/16", "::1"])
    for allowed in ("127.0.0.1", "10.20.3.4", "::1", "::ffff:127.0.0.1"):
        assert allowing.address_problem(ipaddress.ip_address(allowed)) is None
    assert allowing.address_problem(ipaddress.ip_address("10.21.0.1")) == "10.21.0.1 is a private address"


async def test_a_literal_address_is_refused_without_resolving():
    with pytest.raises(OutboundRefused, match=r"^127\.0\.0\.1 is a loopback address: .* unless PUBLIPOST_OUTBOUND_ALLOW"):
        await OutboundPolicy.of([]).check("127.0.0.1", 25)
    with pytest.raises(OutboundRefused, match="::1 is a loopback address"):
        await OutboundPolicy.of([]).check("[::1]", 25)


async def test_a_name_resolving_to_a_refused_address_and_a_missing_name_get_the_same_answer():
    strict = OutboundPolicy.of([])
    with pytest.raises(OutboundRefused) as internal:
        await strict.check("localhost", 25)
    with pytest.raises(HostUnresolved) as missing:
        await strict.check("no-such-host.invalid", 25)
    assert str(internal.value) == (
        "'localhost' does not resolve to a public address: private, loopback and link-local addresses are "
        "refused unless PUBLIPOST_OUTBOUND_ALLOW lists them"
    )
    assert str(missing.value) == str(internal.value).replace("'localhost'", "'no-such-host.invalid'")


async def test_the_allow_list_names_hosts_and_domains_whatever_they_resolve_to(monkeypatch):
    loop = asyncio.get_running_loop()

    async def resolve(host, port, **_):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    monkeypatch.setattr(loop, "getaddrinfo", resolve)
    policy = OutboundPolicy.of(["gotenberg", "*.svc.cluster.local"])
    assert await policy.addresses("gotenberg", 3000) == [(socket.AF_INET, ("10.0.0.7", 3000))]
    assert await policy.addresses("smtp.mail.svc.cluster.local.", 25)
    with pytest.raises(OutboundRefused):
        await policy.addresses("gotenberg.example", 3000)


async def test_a_host_the_allow_list_names_may_be_saved_before_it_resolves():
    await OutboundPolicy.of(["gotenberg.not-deployed-yet.invalid"]).check("gotenberg.not-deployed-yet.invalid", 3000)
    with pytest.raises(HostUnresolved):
        await OutboundPolicy.of([]).check("gotenberg.not-deployed-yet.invalid", 3000)


async def test_an_http_client_connects_only_to_what_the_policy_allows(monkeypatch):
    accepted = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a proxy of the environment is never used
    try:
        async with OutboundPolicy.of([]).http_client() as strict:
            with pytest.raises(httpx.ConnectError, match="loopback address"):
                await strict.get(f"http://127.0.0.1:{port}/")
            with pytest.raises(httpx.ConnectError, match="does not resolve to a public address"):
                await strict.get(f"http://localhost:{port}/")
        assert accepted == []
        async with OutboundPolicy.of(["127.0.0.0/8"]).http_client() as allowing:
            assert (await allowing.get(f"http://localhost:{port}/")).text == "ok"
        assert accepted == [1]
    finally:
        server.close()
