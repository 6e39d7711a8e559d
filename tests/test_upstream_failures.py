"""Upstream faults become clear errors naming the provider, never the key."""

import asyncio
import json
import socket

import aiohttp
from conftest import openai_provider
from fakes.openai_upstream import Behaviour

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}]}


async def post(server, body=BODY):
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.make_url(CHAT), json=body)
        return resp.status, await resp.json(), resp.headers


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_upstream_4xx_passes_through_with_status_and_message(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    fake_openai.script(Behaviour.error(400, "Invalid 'messages': bad shape.", param="messages"))
    status, body, _ = await post(server)
    assert status == 400
    assert body["error"]["message"] == "Invalid 'messages': bad shape."
    assert body["error"]["param"] == "messages"


async def test_upstream_5xx_is_502_naming_provider_not_key(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    fake_openai.script(Behaviour.error(500))
    status, body, _ = await post(server)
    assert status == 502
    assert "'up'" in body["error"]["message"]
    assert "sk-up" not in json.dumps(body)


async def test_upstream_credential_refusal_is_502_not_401(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    fake_openai.script(Behaviour.error(401))
    status, body, _ = await post(server)
    assert status == 502 and "credentials" in body["error"]["message"]


async def test_upstream_429_after_retries_is_429_with_retry_after(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    fake_openai.script(Behaviour.error(429, retry_after=3))
    status, body, headers = await post(server)
    assert status == 429 and headers["retry-after"] == "3"
    assert body["error"]["type"] == "rate_limit_error"


async def test_refused_connection_is_502(gateway):
    server = await gateway({
        "providers": {"dead": {"type": "openai", "base_url": f"http://127.0.0.1:{closed_port()}/v1"}},
        "models": {"gpt-test": {"targets": [{"provider": "dead", "model": "m"}]}}})
    status, body, _ = await post(server)
    assert status == 502 and "'dead'" in body["error"]["message"]
    assert body["error"]["code"] == "upstream_error"


async def test_slow_upstream_is_504(gateway, fake_openai):
    overrides = openai_provider(fake_openai, timeout_s=0.3)
    server = await gateway(overrides)
    fake_openai.script(Behaviour.slow(5))
    status, body, _ = await post(server)
    assert status == 504 and "'up'" in body["error"]["message"]
    assert body["error"]["code"] == "upstream_timeout"


async def test_dropped_stream_ends_with_an_error_event(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    fake_openai.script(Behaviour.drop_stream(after_events=2))
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.make_url(CHAT), json={**BODY, "stream": True})
        lines = [line.decode().strip() async for line in resp.content]
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert len(data) == 3 and "error" in data[-1]
    assert "'up'" in data[-1]["error"]["message"]


async def test_client_disconnect_cancels_upstream_call(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    fake_openai.script(Behaviour.trickle(0.2))
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.make_url(CHAT), json={**BODY, "stream": True})
        await resp.content.readline()
        resp.close()
    for _ in range(60):
        if fake_openai.disconnects:
            break
        await asyncio.sleep(0.05)
    assert fake_openai.disconnects == 1


async def test_client_disconnect_cancels_non_stream_upstream_call(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    fake_openai.script(Behaviour.slow(30))
    async with aiohttp.ClientSession() as http:
        task = asyncio.ensure_future(http.post(server.make_url(CHAT), json=BODY))
        await fake_openai.wait_for_requests(1)
        task.cancel()
    for _ in range(60):
        if fake_openai.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    assert fake_openai.in_flight == 0


async def test_error_event_inside_a_stream_ends_it_as_an_error(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    fake_openai.script(Behaviour.error_in_stream(after_events=2))
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.make_url(CHAT), json={**BODY, "stream": True})
        lines = [line.decode().strip() async for line in resp.content]
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert "error" in data[-1] and "'up'" in data[-1]["error"]["message"]
    assert data[-1]["error"]["code"] == "upstream_stream_error"


OPERATOR_KEY = "sk-up-operator-" + "K3y" * 12  # not OpenAI-shaped past its prefix


async def test_a_4xx_echoing_the_provider_key_reaches_the_client_without_it(gateway,
                                                                            fake_openai):
    provider = openai_provider(fake_openai)
    provider["providers"]["up"]["api_key"] = OPERATOR_KEY
    provider["providers"]["up"]["headers"] = {"x-org-token": "org-secret-0123456789"}
    server = await gateway(provider)
    other = "sk-ant-api03-" + "z" * 40
    fake_openai.script(Behaviour.error(
        400, f"Bad request from key {OPERATOR_KEY} (Authorization: Bearer {OPERATOR_KEY}), "
             f"org org-secret-0123456789, also saw {other} and "
             "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefgh",
        code=OPERATOR_KEY[:60], param=f"key={OPERATOR_KEY}"))
    status, body, _ = await post(server)
    text = json.dumps(body)
    assert status == 400 and body["error"]["message"].startswith("Bad request from key ***")
    for secret in (OPERATOR_KEY, OPERATOR_KEY[:60], "org-secret-0123456789", other[13:],
                   "eyJzdWIiOiIxMjM0NTY3ODkwIn0"):
        assert secret not in text
    assert body["error"]["code"] is None and body["error"]["param"] is None


async def test_anthropic_4xx_echoing_the_key_is_scrubbed_in_anthropics_shape(gateway,
                                                                             aiohttp_server):
    from fakes.anthropic_upstream import start_fake_anthropic
    from fakes.control import root_url

    upstream, control = await start_fake_anthropic(aiohttp_server)
    key = "sk-ant-api03-" + "Q" * 90 + "-AA"
    server = await gateway({
        "providers": {"claude": {"type": "anthropic", "base_url": root_url(upstream),
                                 "api_key": key}},
        "models": {"c": {"targets": [{"provider": "claude", "model": "claude-sonnet-4-5"}]}}})
    control.fail(400, f"x-api-key {key} may not use this model")
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.make_url("/v1/messages"), json={
            "model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        body = await resp.json()
    assert resp.status == 400 and body["type"] == "error"
    assert key not in json.dumps(body) and "Q" * 20 not in json.dumps(body)
    assert body["error"]["message"].endswith("may not use this model")


async def test_a_lone_call_keeps_its_retries_under_the_retry_budget(gateway, fake_openai):
    server = await gateway({**openai_provider(fake_openai), "pipeline": [
        {"name": "routing", "retries": 2, "backoff_s": 0.01, "timeout_s": 5}]})
    fake_openai.script(Behaviour.error(503), Behaviour.error(500))
    status, _, _ = await post(server)
    assert status == 200 and len(fake_openai.requests) == 3
