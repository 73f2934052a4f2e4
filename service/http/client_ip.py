"""The client's IP address: the socket peer, or X-Forwarded-For when that peer is a trusted proxy.

A client can write anything into X-Forwarded-For, so the header is read only when the direct
peer is in TRUSTED_PROXIES, and then from the right: every trusted proxy appends the address
it received the request from, so the right-most address that is not a trusted proxy is the
client. Addresses further left were written by the client itself and are never believed.

The client's *source network* (IPv4 /24, IPv6 /48) is what per-network limits and rankings
count: sessions are free to invent and one host or subscriber can rotate through the
addresses of its prefix, but a /24 or /48 per voter or searcher costs real money.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

from service.ctx import ApiRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HEADER = "x-forwarded-for"
MAX_HOPS = 32  # a longer chain is cut: more hops than this is not a real proxy path
IPV4_NETWORK_PREFIX = 24
IPV6_NETWORK_PREFIX = 48
NETWORK_MAX_LENGTH = 64  # build_votes.source_network (models.builds.NETWORK_LENGTH)


def parse_ip(text: str) -> IPAddress | None:
    """An address from a socket peer or a forwarded-for entry ("[v6]:port" and "v4:port" too)."""
    value = text.strip()
    if value.startswith("["):  # [2001:db8::1]:443
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:  # 203.0.113.7:8080
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:198.51.100.1 is the IPv4 client 198.51.100.1
    return address


class ClientIp:
    """Resolves the client address of a request against a fixed list of trusted proxy CIDRs."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self.trusted: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies
        )

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.trusted)

    def resolve(self, peer: str, forwarded_for: Sequence[str] = ()) -> str:
        """The client address for a request from `peer` carrying these X-Forwarded-For values."""
        peer_address = parse_ip(peer)
        if peer_address is None:
            return peer  # not an IP socket (or unknown): nothing to trust or to parse
        if not self.trusted or not forwarded_for or not self.is_trusted(peer_address):
            return str(peer_address)
        hops = [hop for value in forwarded_for for hop in value.split(",")][-MAX_HOPS:]
        client = peer_address
        for hop in reversed(hops):
            address = parse_ip(hop)
            if address is None:
                break  # garbage: the proxy that handed it over is the last address we know
            client = address
            if not self.is_trusted(address):
                break
        return str(client)

    def of(self, request: ApiRequest) -> str:
        """The client address of `request` (cached on the request's context)."""
        cached: str | None = getattr(request.ctx, "client_ip", None)
        if cached is None:
            forwarded = request.headers.getall(HEADER, []) if self.trusted else []
            cached = request.ctx.client_ip = self.resolve(request.ip, forwarded)
        return cached


@functools.lru_cache(maxsize=4096)
def source_network(address: str) -> str:
    """The network of a client address: "203.0.113.0/24", "2001:db8:1::/48"; a peer that is
    not an IP address (a unix socket) is its own network, as it is (cut to 64 characters)."""
    parsed = parse_ip(address)
    if parsed is None:
        return address[:NETWORK_MAX_LENGTH]
    prefix = IPV4_NETWORK_PREFIX if parsed.version == 4 else IPV6_NETWORK_PREFIX
    return str(ipaddress.ip_network((parsed, prefix), strict=False))


@functools.lru_cache(maxsize=8)
def _resolver(trusted_proxies: tuple[str, ...]) -> ClientIp:
    return ClientIp(trusted_proxies)


def source_network_of(request: ApiRequest) -> str:
    """The source network of the request's client (the same client address the rate limits
    see: X-Forwarded-For only through TRUSTED_PROXIES); cached on the request's context."""
    cached: str | None = getattr(request.ctx, "source_network", None)
    if cached is None:
        resolver = _resolver(request.app.ctx.settings.trusted_proxies)
        cached = request.ctx.source_network = source_network(resolver.of(request))
    return cached
