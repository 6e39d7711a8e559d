"""Routing end to end: two fake OpenAI upstreams as two targets of one model, over loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
import pytest
from fakes.openai_upstream import Behaviour, FakeOpenAI, start_fake_openai
from prometheus_client.parser import text_string_to_metric_families

from onyproxy.appkeys import GATEWAY

CHAT = "/v1/chat/completions"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture
async def a(aiohttp_server) -> FakeOpenAI:
    return (await start_fake_openai(aiohttp_server))[1]


@pytest.fixture
async def b(aiohttp_server) -> FakeOpenAI:
    return (await start_fake_openai(aiohttp_server))[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def routed(first: FakeOpenAI | str, second: FakeOpenAI, strategy: str = "fallback",
           first_target: dict[str, Any] | None = None, **routing: Any) -> dict[str, Any]:
    """Config overrides: model ``m`` served by providers ``a`` then ``b``."""
    base_url = first if isinstance(first, str) else first.base_url
    return {
        "providers": {"a": {"type": "openai", "base_url": base_url, "api_key": "sk-a"},
                      "b": {"type": "openai", "base_url": second.base_url, "api_key": "sk-b"}},
        "models": {"m": {"strategy": strategy, "targets": [
            {"provider": "a", "model": "gpt-4o-mini", **(first_target or {})},
            {"provider": "b", "model": "gpt-4o-mini"}]}},
        "pipeline": [{"name": "routing", "retries": 0, "timeout_s": 5, **routing}],
    }


async def post(server, body=BODY) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.make_url(CHAT), json=body)
        return resp.status, await resp.json(), resp.headers


async def test_falls_over_past_a_dead_target(gateway, b):
    server = await gateway(routed(f"http://127.0.0.1:{closed_port()}/v1", b, retries=1))
    status, body, headers = await post(server)
    assert status == 200 and body["choices"][0]["message"]["content"] == "echo: hello there"
    assert headers["x-onyproxy-provider"] == "b"
    assert len(b.requests) == 1


@pytest.mark.parametrize("behaviour", [Behaviour.error(500), Behaviour.error(503),
                                       Behaviour.error(429), Behaviour.hang_up()])
async def test_falls_over_on_server_errors_rate_limits_and_hang_ups(gateway, a, b, behaviour):
    server = await gateway(routed(a, b))
    a.script(behaviour)
    status, _, headers = await post(server)
    assert status == 200 and headers["x-onyproxy-provider"] == "b"
    assert len(a.requests) == 1 and len(b.requests) == 1


async def test_a_timeout_falls_over_at_once_without_retrying_the_slow_target(gateway, a, b):
    server = await gateway(routed(a, b, first_target={"timeout_s": 0.3}, retries=2))
    a.script(Behaviour.slow(30), Behaviour.slow(30), Behaviour.slow(30))
    status, _, headers = await post(server)
    assert status == 200 and headers["x-onyproxy-provider"] == "b"
    assert len(a.requests) == 1 and len(b.requests) == 1


async def test_per_target_headers_reach_the_upstream(gateway, a, b):
    server = await gateway(routed(a, b, first_target={"headers": {"x-team": "blue"}}))
    await post(server)
    assert a.last.headers["x-team"] == "blue"
    assert a.last.headers["authorization"] == "Bearer sk-a"


async def test_retry_after_is_honoured_before_retrying_the_same_target(gateway, a, b):
    server = await gateway(routed(a, b, retries=1, max_backoff_s=2))
    a.script(Behaviour.error(429, retry_after=0.4))
    status, _, headers = await post(server)
    assert status == 200 and headers["x-onyproxy-provider"] == "a"
    first, second = a.requests
    assert second.at - first.at >= 0.4
    assert b.requests == []


async def test_a_retry_after_longer_than_allowed_falls_over_at_once(gateway, a, b):
    server = await gateway(routed(a, b, retries=2, max_backoff_s=1))
    a.script(Behaviour.error(429, retry_after=30))
    status, _, headers = await post(server)
    assert status == 200 and headers["x-onyproxy-provider"] == "b"
    assert len(a.requests) == 1 and len(b.requests) == 1


async def test_a_client_error_passes_through_without_retry_or_fallback(gateway, a, b):
    server = await gateway(routed(a, b, retries=2))
    a.script(Behaviour.error(400, "Invalid 'messages[0]': too long.", param="messages"))
    status, body, _ = await post(server)
    assert status == 400
    assert body["error"]["message"] == "Invalid 'messages[0]': too long."
    assert body["error"]["param"] == "messages"
    assert len(a.requests) == 1 and b.requests == []


async def test_every_target_failing_names_the_last_provider(gateway, a, b):
    server = await gateway(routed(a, b))
    a.script(Behaviour.error(500))
    b.script(Behaviour.error(500))
    status, body, headers = await post(server)
    assert status == 502 and "'b'" in body["error"]["message"]
    assert "x-onyproxy-provider" not in headers


async def test_round_robin_spreads_requests_evenly(gateway, a, b):
    server = await gateway(routed(a, b, strategy="round_robin"))
    answered = [(await post(server))[2]["x-onyproxy-provider"] for _ in range(6)]
    assert answered == ["a", "b", "a", "b", "a", "b"]
    assert len(a.requests) == len(b.requests) == 3


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_circuit_opens_after_failures_and_closes_after_a_good_trial(gateway, a, b):
    server = await gateway(routed(a, b, circuit={"failures": 2, "window_s": 30,
                                                 "cooldown_s": 30}))
    routing = server.app[GATEWAY].pipeline.get("routing")
    routing.breaker.clock = clock = ManualClock()
    a.script(Behaviour.error(500), Behaviour.error(500))
    for _ in range(3):
        assert (await post(server))[2]["x-onyproxy-provider"] == "b"
    assert len(a.requests) == 2  # the third request skipped the open circuit
    assert routing.circuit_states()["a/gpt-4o-mini"] == "open"
    clock.now += 30
    assert routing.circuit_states()["a/gpt-4o-mini"] == "half_open"
    assert (await post(server))[2]["x-onyproxy-provider"] == "a"
    assert routing.circuit_states()["a/gpt-4o-mini"] == "closed"


async def test_a_stream_fails_over_before_it_starts(gateway, a, b):
    server = await gateway(routed(a, b))
    a.script(Behaviour.error(503))
    events, headers = await stream(server)
    assert headers["x-onyproxy-provider"] == "b"
    assert events[-1] == "[DONE]"


async def test_no_retry_once_a_stream_has_started(gateway, a, b):
    server = await gateway(routed(a, b, retries=2))
    a.script(Behaviour.drop_stream(after_events=3))
    events, _ = await stream(server)
    chunks = [json.loads(e) for e in events]
    assert len(chunks) == 4 and "error" in chunks[-1]
    assert "'a'" in chunks[-1]["error"]["message"]
    assert len(a.requests) == 1 and b.requests == []


async def stream(server) -> tuple[list[str], Any]:
    """The data of every event of a streamed chat call, and the response headers."""
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.make_url(CHAT), json={**BODY, "stream": True})
        lines = [line.decode().strip() async for line in resp.content]
    return [line[6:] for line in lines if line.startswith("data: ")], resp.headers


OUTAGE = {"retries": 2, "backoff_s": 0.01,
          "circuit": {"failures": 5, "window_s": 30, "cooldown_s": 30}}


async def burst(server, count: int, path: str = CHAT, body=BODY) -> list[tuple[int, dict, Any]]:
    """``count`` concurrent calls."""
    async with aiohttp.ClientSession() as http:
        async def one():
            resp = await http.post(server.make_url(path), json=body)
            return resp.status, await resp.json(), resp.headers
        return await asyncio.gather(*[one() for _ in range(count)])


def metric(text: str, name: str, **labels: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == name
               and all(s.labels.get(k) == v for k, v in labels.items()))


async def test_an_outage_does_not_multiply_the_upstream_load(gateway, a, b):
    server = await gateway(routed(a, b, **OUTAGE))
    routing = server.app[GATEWAY].pipeline.get("routing")
    routing.breaker.clock = routing.budget.clock = ManualClock()
    a.default = b.default = Behaviour.error(503)
    answers = await burst(server, 50)
    assert {status for status, _, _ in answers} <= {502, 503}
    # One try per call at each target, plus at most the budget's retries (20 % of 50 calls);
    # without the budget it is three tries per call at each target (300 calls in all).
    assert 50 <= len(a.requests) <= 60 and len(b.requests) <= 60
    assert routing.circuit_states() == {"a/gpt-4o-mini": "open", "b/gpt-4o-mini": "open"}

    seen = len(a.requests), len(b.requests)
    answers += await burst(server, 50)
    assert (len(a.requests), len(b.requests)) == seen  # every call shed, nothing sent
    shed = [(body, headers) for status, body, headers in answers if status == 503]
    assert len(shed) >= 50
    assert all(body["error"]["code"] == "circuit_open" and headers["retry-after"] == "30"
               for body, headers in shed)

    async with aiohttp.ClientSession() as http:
        scraped = await (await http.get(server.make_url("/metrics"))).text()
    assert metric(scraped, "onyproxy_circuit_shed_total", model="m") == len(shed)
    refused = metric(scraped, "onyproxy_retries_refused_total", provider="a")
    assert refused >= 100 - len(a.requests)  # every call that got no retry at a was refused


async def test_one_trial_per_target_per_cooldown_while_the_rest_is_shed(gateway, a, b):
    server = await gateway(routed(a, b, **OUTAGE))
    routing = server.app[GATEWAY].pipeline.get("routing")
    routing.breaker.clock = routing.budget.clock = clock = ManualClock()
    a.default = b.default = Behaviour.error(503)
    await burst(server, 20)
    seen = len(a.requests), len(b.requests)
    clock.now += 30
    answers = await burst(server, 30)
    # The first caller holds both trials: a fails (its circuit reopens, so no retry), then b.
    assert (len(a.requests), len(b.requests)) == (seen[0] + 1, seen[1] + 1)
    assert sorted(status for status, _, _ in answers) == [502] + [503] * 29
    clock.now += 29
    status, body, headers = (await burst(server, 1, "/v1/messages", {
        **BODY, "max_tokens": 50}))[0]
    assert status == 503 and headers["retry-after"] == "1"
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
    a.default = b.default = Behaviour()
    clock.now += 1
    assert (await post(server))[2]["x-onyproxy-provider"] == "a"  # the trial closes it
    assert routing.circuit_states()["a/gpt-4o-mini"] == "closed"
