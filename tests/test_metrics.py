"""``GET /metrics`` against the real gateway over loopback: what moves for each kind of request."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
from conftest import openai_provider
from fakes.openai_upstream import Behaviour
from prometheus_client.parser import text_string_to_metric_families

from onyproxy.appkeys import GATEWAY as GATEWAY_KEY
from onyproxy.errors import GatewayError

CHAT = "/v1/chat/completions"


def ask(text: str = "hello metrics", model: str = "mock-small", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


class Scrape:
    """One parsed scrape; ``value(name, **labels)`` sums the samples matching those labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for family in text_string_to_metric_families(text)
                        for s in family.samples]

    def value(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.samples if s.name == name
                   and all(s.labels.get(k) == v for k, v in labels.items()))

    def label_values(self) -> set[str]:
        return {v for s in self.samples for v in s.labels.values()}


async def scrape(server, headers: dict | None = None) -> Scrape:
    async with aiohttp.ClientSession() as http:
        resp = await http.get(server.make_url("/metrics"), headers=headers or {})
        assert resp.status == 200
        return Scrape(await resp.text())


async def post(server, body: dict, headers: dict | None = None) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.make_url(CHAT), json=body, headers=headers or {})
        return resp.status, await resp.read()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ScriptedConfig:
    reject_status: int = 0
    reject_code: str = ""
    scope: str = ""
    cost_usd: Decimal | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class Scripted:
    """A stand-in for the auth, ratelimit and metering plugins: rejects, or sets cost/usage."""

    name = "scripted"
    Config = ScriptedConfig

    def __init__(self, config: ScriptedConfig, gateway) -> None:
        self.config = config

    async def on_request(self, ex) -> None:
        c = self.config
        if c.scope:
            ex.state["ratelimit"] = {"scope": c.scope}
        if c.reject_status:
            raise GatewayError(c.reject_status, "rejected", "Rejected by test.",
                               code=c.reject_code or None)

    async def on_complete(self, ex) -> None:
        c = self.config
        ex.cost_usd = c.cost_usd
        ex.usage.cached_tokens += c.cached_tokens
        ex.usage.reasoning_tokens += c.reasoning_tokens


def scripted(**options) -> dict:
    return {"pipeline": [{"name": "test_metrics:Scripted", **options},
                         {"name": "routing", "retries": 0, "timeout_s": 5}]}


async def test_success_counts_request_latency_and_tokens(gateway):
    server = await gateway()
    status, _ = await post(server, ask("one two three"))
    assert status == 200
    m = await scrape(server)
    assert m.value("onyproxy_requests_total", surface="openai", model="mock-small",
                   provider="mock", status="2xx") == 1
    assert m.value("onyproxy_request_duration_seconds_count", model="mock-small") == 1
    assert m.value("onyproxy_upstream_duration_seconds_count", provider="mock") == 1
    # The mock counts words: 3 in, "echo: one two three" = 5 out.
    assert m.value("onyproxy_tokens_total", model="mock-small", type="prompt") == 3
    assert m.value("onyproxy_tokens_total", model="mock-small", type="completion") == 5
    assert m.value("onyproxy_time_to_first_token_seconds_count") == 0  # not a stream


async def test_stream_observes_time_to_first_token_and_its_tokens(gateway):
    server = await gateway()
    status, _ = await post(server, ask("stream me please", stream=True))
    assert status == 200
    m = await scrape(server)
    assert m.value("onyproxy_time_to_first_token_seconds_count", model="mock-small",
                   provider="mock") == 1
    assert m.value("onyproxy_tokens_total", type="prompt") == 3
    assert m.value("onyproxy_tokens_total", type="completion") == 5


async def test_unknown_model_is_4xx_under_a_fixed_label(gateway):
    server = await gateway()
    for name in ("no-such-model", "another-made-up-name"):
        status, _ = await post(server, ask(model=name))
        assert status == 404
    status, _ = await post(server, {"model": "mock-small"})  # invalid before the model counts
    assert status == 400
    m = await scrape(server)
    assert m.value("onyproxy_requests_total", model="unknown", provider="none",
                   status="4xx") == 3
    assert "no-such-model" not in m.text and "another-made-up-name" not in m.text


async def test_unreachable_provider_is_5xx_named_after_it(gateway):
    server = await gateway({
        "providers": {"down": {"type": "openai", "base_url": f"http://127.0.0.1:{closed_port()}",
                               "api_key": "sk-down"}},
        "models": {"gpt-down": {"targets": [{"provider": "down", "model": "gpt-4o"}]}},
    })
    status, _ = await post(server, ask(model="gpt-down"))
    assert status == 502
    m = await scrape(server)
    assert m.value("onyproxy_requests_total", model="gpt-down", provider="down",
                   status="5xx") == 1
    assert m.value("onyproxy_upstream_duration_seconds_count", provider="down") == 1


async def test_retries_and_fallbacks_come_from_the_attempts(gateway):
    server = await gateway({
        "providers": {"down": {"type": "openai", "base_url": f"http://127.0.0.1:{closed_port()}",
                               "api_key": "sk-down"}, "mock": {"type": "mock"}},
        "models": {"resilient": {"targets": [{"provider": "down", "model": "gpt-4o"},
                                             {"provider": "mock", "model": "mock-small"}]}},
        "pipeline": [{"name": "routing", "retries": 1, "timeout_s": 5, "backoff_s": 0.01}],
    })
    status, _ = await post(server, ask(model="resilient"))
    assert status == 200
    m = await scrape(server)
    assert m.value("onyproxy_retries_total", provider="down") == 1
    assert m.value("onyproxy_fallbacks_total", model="resilient", provider="down") == 1
    assert m.value("onyproxy_upstream_duration_seconds_count", provider="down") == 2
    assert m.value("onyproxy_requests_total", model="resilient", provider="mock",
                   status="2xx") == 1


async def test_cached_and_reasoning_tokens_and_cost(gateway):
    server = await gateway(scripted(cost_usd="0.0125", cached_tokens=2, reasoning_tokens=4))
    await post(server, ask())
    await post(server, ask())
    m = await scrape(server)
    assert m.value("onyproxy_tokens_total", model="mock-small", type="cached") == 4
    assert m.value("onyproxy_tokens_total", model="mock-small", type="reasoning") == 8
    assert m.value("onyproxy_cost_usd_total", model="mock-small", provider="mock") == 0.025


async def test_401_counts_as_auth_failure(gateway):
    server = await gateway(scripted(reject_status=401, reject_code="invalid_api_key"))
    assert (await post(server, ask()))[0] == 401
    async with aiohttp.ClientSession() as http:
        assert (await http.get(server.make_url("/v1/models"))).status == 401
    m = await scrape(server)
    assert m.value("onyproxy_auth_failures_total", surface="openai") == 2
    assert m.value("onyproxy_requests_total", status="4xx") == 2
    assert m.value("onyproxy_ratelimited_total") == 0


async def test_429_rate_limit_exceeded_counts_by_scope(gateway):
    server = await gateway(scripted(reject_status=429, reject_code="rate_limit_exceeded",
                                    scope="key_model"))
    assert (await post(server, ask()))[0] == 429
    m = await scrape(server)
    assert m.value("onyproxy_ratelimited_total", scope="key_model") == 1
    assert m.value("onyproxy_auth_failures_total") == 0


async def test_other_429s_and_odd_scopes_stay_bounded(gateway):
    server = await gateway(scripted(reject_status=429, reject_code="rate_limit_exceeded",
                                    scope="key:ony-abc123"))
    await post(server, ask())
    m = await scrape(server)
    assert m.value("onyproxy_ratelimited_total", scope="other") == 1
    assert "ony-abc123" not in m.text


async def test_no_label_carries_content_request_id_or_address(gateway):
    server = await gateway(scripted(scope="account"))
    canary = "CANARY-7f3a9e-do-not-store"
    request_id = "req-canary-51c2d0"
    for stream in (False, True):
        await post(server, ask(f"my secret is {canary}", stream=stream),
                   headers={"x-request-id": request_id})
    await post(server, ask(canary, model=canary), headers={"x-request-id": request_id})
    m = await scrape(server)
    assert m.value("onyproxy_requests_total") == 3
    assert canary not in m.text and request_id not in m.text
    assert not any("127.0.0.1" in v for v in m.label_values())


async def test_plugin_api_reaches_the_exposition(gateway):
    server = await gateway()
    metrics = server.app[GATEWAY_KEY].metrics
    metrics.spool(7)
    metrics.spool_flush_error()
    metrics.ratelimit_backend_failure("open")
    metrics.auth_failure("ui")
    metrics.ratelimited("ip")
    metrics.circuit("mock", "mock-small", "open")
    m = await scrape(server)
    assert m.value("onyproxy_spool_depth") == 7
    assert m.value("onyproxy_spool_flush_errors_total") == 1
    assert m.value("onyproxy_ratelimit_backend_failures_total", failure_mode="open") == 1
    assert m.value("onyproxy_auth_failures_total", surface="ui") == 1
    assert m.value("onyproxy_ratelimited_total", scope="ip") == 1


async def test_circuit_state_is_read_from_routing(gateway):
    server = await gateway({
        "providers": {"down": {"type": "openai", "base_url": f"http://127.0.0.1:{closed_port()}",
                               "api_key": "sk-down"}},
        "models": {"gpt-down": {"targets": [{"provider": "down", "model": "gpt-4o"}]}},
        "pipeline": [{"name": "routing", "retries": 0, "timeout_s": 5,
                      "circuit": {"failures": 2, "window_s": 60, "cooldown_s": 60}}],
    })
    await post(server, ask(model="gpt-down"))
    assert (await scrape(server)).value("onyproxy_circuit_state", provider="down",
                                        model="gpt-4o") == 0
    await post(server, ask(model="gpt-down"))
    assert (await scrape(server)).value("onyproxy_circuit_state", provider="down",
                                        model="gpt-4o") == 2


async def test_metrics_content_type_is_prometheus_text(gateway):
    server = await gateway()
    async with aiohttp.ClientSession() as http:
        resp = await http.get(server.make_url("/metrics"))
        assert resp.headers["content-type"].startswith("text/plain; version=")
        resp = await http.get(server.make_url("/metrics"), headers={
            "accept": "application/openmetrics-text; version=1.0.0"})
        assert resp.headers["content-type"].startswith("application/openmetrics-text")
        assert (await resp.text()).rstrip().endswith("# EOF")


async def test_optional_bearer_token_protects_metrics(gateway):
    server = await gateway({"metrics": {"token": "scrape-secret"}})
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"authorization": "Bearer wrong"},
                        {"authorization": "Basic scrape-secret"}):
            resp = await http.get(server.make_url("/metrics"), headers=headers)
            assert resp.status == 401 and "scrape-secret" not in await resp.text()
    m = await scrape(server, headers={"authorization": "Bearer scrape-secret"})
    assert "onyproxy_requests_total" in m.text


async def test_each_app_has_its_own_registry(gateway):
    first, second = await gateway(), await gateway()
    await post(first, ask())
    assert (await scrape(first)).value("onyproxy_requests_total") == 1
    assert (await scrape(second)).value("onyproxy_requests_total") == 0


async def test_stream_broken_by_upstream_counts_as_its_error(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    fake_openai.script(Behaviour.drop_stream(after_events=2))
    status, body = await post(server, ask(model="gpt-test", stream=True))
    assert status == 200 and b"error" in body  # the 200 was out; the error came as an event
    m = await scrape(server)
    assert m.value("onyproxy_requests_total", model="gpt-test", provider="up",
                   status="5xx") == 1
    assert m.value("onyproxy_time_to_first_token_seconds_count", model="gpt-test") == 1


async def test_client_leaving_before_the_answer_is_cancelled(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    fake_openai.script(Behaviour.slow(30))
    async with aiohttp.ClientSession() as http:
        task = asyncio.ensure_future(http.post(server.make_url(CHAT), json=ask(model="gpt-test")))
        await fake_openai.wait_for_requests(1)
        task.cancel()
    for _ in range(60):
        m = await scrape(server)
        if m.value("onyproxy_requests_total"):
            break
        await asyncio.sleep(0.05)
    assert m.value("onyproxy_requests_total", model="gpt-test", provider="up",
                   status="cancelled") == 1
    # The cut-short attempt has no meaningful duration.
    assert m.value("onyproxy_upstream_duration_seconds_count") == 0
