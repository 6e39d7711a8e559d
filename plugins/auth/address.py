"""The client address wrong keys are counted against.

Behind a load balancer every request comes from the balancer's address; counting failures
against it would let one client with bad keys block everybody. With ``trusted_proxies`` set,
a request from such a proxy is attributed to the rightmost ``X-Forwarded-For`` hop that is not
itself a trusted proxy: the address the outermost trusted proxy saw. Hops further left are
written by the client and never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_HOP = 64  # longer than any IPv6 text form; a hop is used as a table key


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """``["10.0.0.0/8", "::1"]`` → networks; raises ``ValueError`` on a bad entry."""
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def check_networks(values: Sequence[str]) -> str | None:
    """Config check: every entry an IP address or a CIDR network."""
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"{value!r} is not an IP address or network (e.g. 10.0.0.0/8)"
    return None


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: tuple[Network, ...]) -> str:
    """The address to count against (see the module docs)."""
    if not peer:
        return "unknown"
    if not trusted or not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop[:MAX_HOP]
    return hops[0][:MAX_HOP] if hops else peer


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
