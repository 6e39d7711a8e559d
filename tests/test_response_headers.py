"""Headers every answer carries for safety: no software versions in ``Server`` (over plain
HTTP, so no ``Strict-Transport-Security`` either; the TLS half is in test_tls.py)."""

from __future__ import annotations

import aiohttp
import pytest

CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "ping"}]}


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/healthz", None),
    ("GET", "/ui/signin", None),  # a sub-application
    ("POST", "/v1/chat/completions", CHAT),
    ("GET", "/no/such/page", None),
    ("POST", "/v1/chat/completions", {"model": "unknown-model", "messages": []}),
])
async def test_no_answer_names_python_or_aiohttp_versions(gateway, method, path, body):
    gw = await gateway()
    async with aiohttp.ClientSession() as http, http.request(
            method, gw.make_url(path), json=body) as resp:
        await resp.read()
        server = resp.headers.getall("Server", [])
    assert server == ["onyproxy"]
    assert "Strict-Transport-Security" not in resp.headers
