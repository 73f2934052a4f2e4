"""Client IP: the socket peer; X-Forwarded-For only when that peer is a trusted proxy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.ctx import App
from service.http.client_ip import ClientIp, source_network
from tests.factories import API

TRUSTED = ClientIp(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # A direct client (untrusted peer) cannot choose its address with the header.
        ("198.51.100.7", ["10.1.2.3"], "198.51.100.7"),
        # Through one trusted proxy: the address it appended.
        ("10.0.0.5", ["203.0.113.9"], "203.0.113.9"),
        # Whatever the client wrote on the left is ignored: right-most untrusted wins.
        ("10.0.0.5", ["1.1.1.1, 8.8.8.8, 203.0.113.9"], "203.0.113.9"),
        # A chain of trusted proxies is walked from the right.
        ("10.0.0.5", ["6.6.6.6, 203.0.113.9, 10.9.9.9, 10.8.8.8"], "203.0.113.9"),
        # Several header lines count as one comma-separated list, in order.
        ("10.0.0.5", ["6.6.6.6, 203.0.113.9", "10.9.9.9"], "203.0.113.9"),
        # Every hop trusted: the left-most one is as far as we can see.
        ("10.0.0.5", ["10.3.3.3, 10.4.4.4"], "10.3.3.3"),
        # Garbage where a proxy should have written an address: stop at the last proxy.
        ("10.0.0.5", ["203.0.113.9, not-an-ip"], "10.0.0.5"),
        ("10.0.0.5", ["203.0.113.9, 10.4.4.4, unknown"], "10.0.0.5"),
        ("10.0.0.5", [""], "10.0.0.5"),
        # Ports and brackets, as some proxies write them.
        ("10.0.0.5", ["203.0.113.9:51234"], "203.0.113.9"),
        ("10.0.0.5", ["[2001:db8::7]:443"], "2001:db8::7"),
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
        # IPv4-mapped IPv6 peers and hops are their IPv4 address.
        ("::ffff:10.0.0.5", ["::ffff:203.0.113.9"], "203.0.113.9"),
        ("::ffff:198.51.100.7", [], "198.51.100.7"),
        # Not an IP socket (unix socket, unknown): taken as it is, header ignored.
        ("", ["203.0.113.9"], ""),
    ],
)
def test_resolve(peer: str, forwarded: list[str], client: str) -> None:
    assert TRUSTED.resolve(peer, forwarded) == client


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert ClientIp([]).resolve("10.0.0.5", ["203.0.113.9"]) == "10.0.0.5"


def test_long_chains_are_cut() -> None:
    chain = ", ".join(["10.7.7.7"] * 1000)
    assert TRUSTED.resolve("10.0.0.5", [f"203.0.113.9, {chain}"]) == "10.7.7.7"


def test_trusted_proxies_are_cidrs() -> None:
    resolver = ClientIp(["192.0.2.0/24", "2001:db8:ffff::1"])
    assert resolver.resolve("192.0.2.200", ["203.0.113.9"]) == "203.0.113.9"
    assert resolver.resolve("192.0.3.1", ["203.0.113.9"]) == "192.0.3.1"
    assert resolver.resolve("2001:db8:ffff::1", ["203.0.113.9"]) == "203.0.113.9"
    assert resolver.resolve("2001:db8:ffff::2", ["203.0.113.9"]) == "2001:db8:ffff::2"


# ---- end to end: the per-IP rate limit follows the resolved address -----------------------


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "rate_limit_enabled": True,
        "rate_limit_read": 1,
        "rate_limit_ip_multiplier": 2,
        "trusted_proxies": ("10.0.0.0/8",),
    }


def client_at(app: App, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def statuses(
    http: httpx.AsyncClient, n: int, forwarded: list[str] | None = None
) -> list[int]:
    """n GETs without a session (so only the per-IP limit, 2 per minute, applies)."""
    out = []
    for i in range(n):
        extra = {"X-Forwarded-For": forwarded[i % len(forwarded)]} if forwarded else {}
        out.append((await http.get(f"{API}/builds/templates", headers=extra)).status_code)
    return out


async def test_spoofed_header_from_a_direct_client_is_ignored(app: App) -> None:
    async with client_at(app, "198.51.100.7") as http:
        spoofed = [f"203.0.113.{i}" for i in range(10)]
        assert await statuses(http, 4, spoofed) == [200, 200, 429, 429]


async def test_clients_behind_a_trusted_proxy_are_told_apart(app: App) -> None:
    async with client_at(app, "10.0.0.5") as proxy:
        assert await statuses(proxy, 3, ["203.0.113.1"]) == [200, 200, 429]
        assert await statuses(proxy, 2, ["203.0.113.2"]) == [200, 200]
        # A client behind the proxy that forges a left-hand entry is still itself.
        assert await statuses(proxy, 1, ["9.9.9.9, 203.0.113.1"]) == [429]
        # The proxy's own requests (no header) are counted as the proxy.
        assert await statuses(proxy, 3) == [200, 200, 429]


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("203.0.113.0", "203.0.113.0/24"),
        ("::ffff:203.0.113.77", "203.0.113.0/24"),  # IPv4-mapped: its IPv4 network
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"),
        ("2001:db8:1:ffff::1", "2001:db8:1::/48"),
        ("[2001:db8:2::9]:443", "2001:db8:2::/48"),
        ("", ""),  # not an IP socket: its own network
    ],
)
def test_source_network(address: str, network: str) -> None:
    assert source_network(address) == network
