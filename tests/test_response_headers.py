"""Headers every answer carries for safety: no software versions in ``Server``; over plain
HTTP no ``Strict-Transport-Security``, behind an HTTPS proxy and with TLS (test_tls.py) one."""

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


async def test_behind_an_https_proxy_answers_carry_hsts(gateway):
    gw = await gateway({"server": {"behind_https_proxy": True}})
    async with aiohttp.ClientSession() as http, http.get(gw.make_url("/healthz")) as resp:
        assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"
