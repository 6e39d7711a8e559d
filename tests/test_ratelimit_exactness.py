"""Limits hold exactly across gateway processes sharing one Redis, and slots are never leaked.

The gateways are real ``onyproxy serve`` processes; the upstream is a fake OpenAI server in this
process that holds every answer until the test opens its gate, so "in flight" is a state the
test controls rather than a race against the clock.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from redis_server import RedisServer
from serve_process import GatewayProcess

from onyproxy.exchange import Exchange, Identity
from onyproxy.pipeline import NoConfig

TESTS = Path(__file__).parent
COMPLETION = {"id": "chatcmpl-gate", "object": "chat.completion", "created": 0,
              "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop",
                                                   "message": {"role": "assistant",
                                                               "content": "ok"}}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
CHUNK = b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",' \
        b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'


class HeaderIdentity:
    """Test-only stand-in for the auth plugin: the key id is the ``x-test-key`` header."""

    name = "header_identity"
    Config = NoConfig

    def __init__(self, config: Any, gateway: Any) -> None:
        pass

    async def on_request(self, ex: Exchange) -> None:
        ex.identity = Identity(account_id="acme", key_id=ex.headers["x-test-key"])


class Gate:
    """What reached the gated upstream, and the switch that lets its answers go."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.arrived = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.base_url = ""


GATE: web.AppKey[Gate] = web.AppKey("gate", Gate)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    gate = request.app[GATE]
    body = await request.json()
    gate.arrived += 1
    gate.in_flight += 1
    gate.max_in_flight = max(gate.max_in_flight, gate.in_flight)
    try:
        if not body.get("stream"):
            await gate.opened.wait()
            return web.json_response(COMPLETION)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(CHUNK)  # the client has its first token; the rest waits
        await gate.opened.wait()
        await resp.write(CHUNK + b"data: [DONE]\n\n")
        return resp
    finally:
        gate.in_flight -= 1


@pytest.fixture
async def gate(aiohttp_server):
    app = web.Application()
    app[GATE] = gate = Gate()
    app.router.add_post("/v1/chat/completions", chat_completions)
    server = await aiohttp_server(app)
    gate.base_url = str(server.make_url("/v1"))
    yield gate
    gate.opened.set()  # nothing may stay parked when the server shuts down


@pytest.fixture
def redis(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        yield server


def config(gate: Gate, limiter: dict[str, Any]) -> dict[str, Any]:
    return {
        "providers": {"mock": {"type": "mock"},
                      "gated": {"type": "openai", "base_url": gate.base_url, "api_key": "sk-x"}},
        "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]},
                   "slow": {"targets": [{"provider": "gated", "model": "gpt-4o-mini"}]}},
        "pipeline": [{"name": "test_ratelimit_exactness:HeaderIdentity"},
                     {"name": "ratelimit", **limiter},
                     {"name": "routing", "retries": 0, "timeout_s": 120}],
    }


@pytest.fixture
async def two_gateways(tmp_path, redis, gate):
    """Start ``await two_gateways(defaults)``: two processes, one Redis."""
    started: list[GatewayProcess] = []

    async def start(defaults: dict[str, int]) -> list[GatewayProcess]:
        # A generous Redis timeout: on a loaded test machine, slow is not down.
        limiter = {"backend": "redis", "url": redis.url, "defaults": defaults, "timeout_s": 5}
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            started.append(GatewayProcess(config(gate, limiter), tmp_path / name,
                                          env={"PYTHONPATH": str(TESTS)}))
        await asyncio.gather(*(asyncio.to_thread(p.wait_ready) for p in started))
        return started

    yield start
    gate.opened.set()
    for process in started:
        process.stop()


async def post(http: aiohttp.ClientSession, gateway: GatewayProcess, key: str,
               model: str = "mock-small", stream: bool = False) -> int:
    async with http.post(gateway.url("/v1/chat/completions"), headers={"x-test-key": key},
                         json={"model": model, "stream": stream,
                               "messages": [{"role": "user", "content": "hi"}]}) as resp:
        await resp.read()
        return resp.status


@pytest.mark.slow
async def test_rpm_is_exact_across_two_gateway_processes(two_gateways):
    gateways = await two_gateways({"rpm": 50})
    connector = aiohttp.TCPConnector(limit=0)  # all 100 at once, none queued in the client
    async with aiohttp.ClientSession(connector=connector) as http:
        statuses = await asyncio.gather(*(post(http, gateways[i % 2], "key-a")
                                          for i in range(100)))
        other_key = await asyncio.gather(*(post(http, gateways[i % 2], "key-b")
                                           for i in range(10)))
    assert Counter(statuses) == {200: 50, 429: 50}
    assert other_key == [200] * 10  # a key's limit is its own


@pytest.mark.slow
async def test_concurrency_is_exact_across_two_gateway_processes(two_gateways, gate):
    gateways = await two_gateways({"concurrent": 5})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        calls = [asyncio.create_task(post(http, gateways[i % 2], "key-a", "slow"))
                 for i in range(20)]
        # Every call is either refused or parked at the upstream; none is still on its way.
        while sum(c.done() for c in calls) + gate.arrived < 20:
            await asyncio.wait(calls, timeout=0.05)
        assert (gate.arrived, gate.max_in_flight) == (5, 5)
        assert [c.result() for c in calls if c.done()] == [429] * 15
        gate.opened.set()
        assert Counter(await asyncio.gather(*calls)) == {200: 5, 429: 15}
        # Every slot came back: five more fit at once, on either gateway.
        again = await asyncio.gather(*(post(http, gateways[i % 2], "key-a", "slow")
                                       for i in range(5)))
    assert again == [200] * 5
    assert gate.max_in_flight == 5


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_slot_is_released_when_the_client_leaves_mid_stream(gateway, gate, backend,
                                                                      request):
    limiter: dict[str, Any] = {"backend": backend, "defaults": {"concurrent": 1}}
    if backend == "redis":
        limiter.update(url=request.getfixturevalue("redis").url, timeout_s=5)
    server = await gateway(config(gate, limiter))
    url = server.make_url("/v1/chat/completions")
    stream = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    probe = {"model": "mock-small", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-test-key": "key-a"}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(url, json=stream, headers=headers)
        assert resp.status == 200
        await resp.content.readuntil(b"\n\n")  # the first event arrived
        async with http.post(url, json=probe, headers=headers) as refused:
            assert refused.status == 429  # the stream holds the only slot
        resp.close()  # the client goes away mid-stream
        for _ in range(400):
            async with http.post(url, json=probe, headers=headers) as after:
                if after.status == 200:
                    break
            await asyncio.sleep(0.025)
    assert after.status == 200


def test_serve_refuses_the_memory_backend_with_several_workers(tmp_path):
    gateway = GatewayProcess({"server": {"workers": 2}, "providers": {"mock": {"type": "mock"}},
                              "models": {"m": {"targets": [{"provider": "mock", "model": "m"}]}},
                              "pipeline": [{"name": "ratelimit", "defaults": {"rpm": 5}}]},
                             tmp_path)
    assert gateway.process.wait(timeout=60) == 1
    output = gateway.log()
    gateway.stop()
    assert "pipeline[0].backend: the memory backend counts in each process separately" in output
    assert "backend: redis" in output
    assert "Traceback" not in output
