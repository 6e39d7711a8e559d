"""IP addresses, version 4 and 6; candidates are confirmed with :mod:`ipaddress`."""

from __future__ import annotations

import ipaddress
import re

from plugins.redaction.detectors.base import Detector

# Four dotted numbers, not part of a longer dotted run (version strings such as 1.2.3.4.5 do not
# match); a full stop that ends a sentence may follow. Octet values are checked afterwards.
IPV4_PATTERN = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)")

# Hex groups and colons, optionally ending in an embedded IPv4 address (::ffff:192.0.2.1).
IPV6_PATTERN = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?![\w:]|\.\d)")
# Every IPv6 address has two colons at most four hex digits apart, within its first 5 chars;
# the address begins at the hex digits (if any) before the first of them.
IPV6_ANCHOR = re.compile(r":[0-9A-Fa-f]{0,4}:")
IPV6_LEAD = re.compile(r"[0-9A-Fa-f]{0,4}")


def ipv4_valid(text: str) -> bool:
    """Each octet 0-255, without leading zeros."""
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def ipv6_valid(text: str) -> bool:
    """A real IPv6 address with at least one digit: rules out ``a::b`` in code and ``::``."""
    if not any(c.isdigit() for c in text):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


IPV4 = Detector("ip", "IP", IPV4_PATTERN, ipv4_valid, needs=".", needs_digit=True)
IPV6 = Detector("ip", "IP", IPV6_PATTERN, ipv6_valid, needs=":", anchor=IPV6_ANCHOR,
                lead=IPV6_LEAD, reach=4)
