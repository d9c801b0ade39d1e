"""Which address a request really comes from, trusting X-Forwarded-For only from our proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The socket peer, unless it is a trusted proxy: then the rightmost X-Forwarded-For
    address that is not itself a trusted proxy. Entries left of that are client-controlled.

    The answer is always an address in its normal form (at most 39 characters: what the
    ``ip`` columns and the limiter keys hold) or None; an IPv4 client reached over IPv6 is
    named by its IPv4 address.
    """
    peer_address = _peer(peer)
    if peer_address is None:
        return None
    if not trusted or not forwarded_for or not _is_trusted(peer_address, trusted):
        return str(peer_address)
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    address = peer_address
    for hop in reversed(hops):
        hop_address = _address(hop)
        if hop_address is None:
            return str(peer_address)  # a garbled header is worth nothing; fall back to the peer
        address = hop_address
        if not _is_trusted(address, trusted):
            break
    return str(address)


def _peer(value: str | None) -> Address | None:
    """The socket peer's address; a zone id (``fe80::1%eth0``) is local routing detail."""
    if value is None:
        return None
    return _address(value.partition("%")[0])


def _address(value: str) -> Address | None:
    """``value`` as an address, or None when it is anything else: a name, junk, a port, a
    zone id (which no client elsewhere can have)."""
    if "%" in value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)
