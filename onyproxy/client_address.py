"""The client address failed sign-ins are counted against.

Behind a load balancer every request comes from the balancer's address; counting failures
against it would let one client with bad keys block everybody. With trusted proxies set (the
auth plugin's ``trusted_proxies``), a request from such a proxy is attributed to the rightmost
forwarded hop that is not itself a trusted proxy: the address the outermost trusted proxy saw.
Hops further left are written by the client and never believed.

The hops are read from every ``X-Forwarded-For`` line, joined in order (a client may send its
own line first; a proxy appends or adds one), or, when there is none, from every RFC 7239
``Forwarded`` line's ``for=`` parameters.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

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


def client_address(peer: str | None, headers: Mapping[str, Any],
                   trusted: tuple[Network, ...]) -> str:
    """The address to count against (see the module docs)."""
    if not peer:
        return "unknown"
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = forwarded_hops(headers)
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop[:MAX_HOP]
    return hops[0][:MAX_HOP] if hops else peer


def forwarded_hops(headers: Mapping[str, Any]) -> list[str]:
    """The forwarded-for addresses, leftmost (claimed by the client) first."""
    lines = _all(headers, "x-forwarded-for")
    if lines:
        return [_bare(hop) for hop in ",".join(lines).split(",") if hop.strip()]
    hops = []
    for element in ",".join(_all(headers, "forwarded")).split(","):
        for pair in element.split(";"):
            name, _, value = pair.strip().partition("=")
            if name.strip().lower() == "for" and value.strip():
                hops.append(_bare(value.strip().strip('"')))
    return hops


def _all(headers: Mapping[str, Any], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    value = headers.get(name)
    return [value] if value else []


def _bare(hop: str) -> str:
    """``"[2001:db8::1]:4711"`` → ``2001:db8::1``; ``"192.0.2.1:80"`` → ``192.0.2.1``."""
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
