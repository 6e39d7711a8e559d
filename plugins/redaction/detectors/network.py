"""IP addresses, version 4 and 6; candidates are confirmed with :mod:`ipaddress`."""

from __future__ import annotations

import ipaddress
import re

from plugins.redaction.detectors.base import Detector

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

# Not part of a longer dotted run, so version strings such as 1.2.3.4.5 do not match;
# a full stop that ends a sentence may follow.
IPV4_PATTERN = re.compile(
    r"(?<![\w.])" + _OCTET + r"(?:\." + _OCTET + r"){3}(?![\w]|\.\d)")

# Hex groups and colons, optionally ending in an embedded IPv4 address (::ffff:192.0.2.1).
IPV6_PATTERN = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?![\w:]|\.\d)")


def ipv6_valid(text: str) -> bool:
    """A real IPv6 address with at least one digit: rules out ``a::b`` in code and ``::``."""
    if not any(c.isdigit() for c in text):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


IPV4 = Detector("ip", "IP", IPV4_PATTERN, needs=".", needs_digit=True)
IPV6 = Detector("ip", "IP", IPV6_PATTERN, ipv6_valid, needs=":")
