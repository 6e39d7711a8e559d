"""The client address failures count against: trusted proxies, every forwarded line, RFC 7239."""

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from onyproxy.client_address import client_address, parse_networks

TRUSTED = parse_networks(["10.0.0.0/8"])


def headers(*lines: tuple[str, str]) -> CIMultiDictProxy:
    found: CIMultiDict = CIMultiDict()
    for name, value in lines:
        found.add(name, value)
    return CIMultiDictProxy(found)


@pytest.mark.parametrize("lines", [
    # A forged first line cannot pick the address: the lines are joined, read from the right.
    [("x-forwarded-for", "192.0.2.200"), ("x-forwarded-for", "203.0.113.5, 10.1.1.1")],
    [("x-forwarded-for", "192.0.2.200, 203.0.113.5:4711")],
    [("forwarded", "for=192.0.2.200"), ("forwarded", 'for="203.0.113.5:4711";proto=https, '
                                                     "for=10.1.1.1")],
    [("forwarded", 'for="[2001:db8::200]", for=203.0.113.5;by=10.9.9.9')],
])
def test_the_rightmost_untrusted_hop_of_every_line_is_the_client(lines):
    assert client_address("10.2.2.2", headers(*lines), TRUSTED) == "203.0.113.5"


def test_an_ipv6_client_in_forwarded():
    lines = headers(("forwarded", 'for="[2001:db8::7]:443", for=10.0.0.1'))
    assert client_address("10.2.2.2", lines, TRUSTED) == "2001:db8::7"


def test_forwarded_headers_from_an_untrusted_peer_are_ignored():
    lines = headers(("x-forwarded-for", "203.0.113.5"), ("forwarded", "for=203.0.113.6"))
    assert client_address("192.0.2.1", lines, TRUSTED) == "192.0.2.1"
    assert client_address("10.2.2.2", lines, ()) == "10.2.2.2"


def test_only_trusted_hops_name_the_leftmost():
    lines = headers(("x-forwarded-for", "10.9.9.9, 10.1.1.1"))
    assert client_address("10.2.2.2", lines, TRUSTED) == "10.9.9.9"
    assert client_address("10.2.2.2", headers(), TRUSTED) == "10.2.2.2"
