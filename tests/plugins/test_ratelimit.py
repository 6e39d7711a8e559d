"""The ``ratelimit`` plugin's hooks, called directly with hand-built exchanges."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import make_config

from onyproxy.config.errors import ConfigError
from onyproxy.errors import GatewayError
from onyproxy.exchange import Exchange, Identity
from plugins.ratelimit import Plugin
from plugins.ratelimit.config import Limits, ModelLimits, RateLimitConfig
from plugins.ratelimit.estimate import estimate_tokens
from plugins.ratelimit.headers import format_duration
from plugins.ratelimit.memory import MemoryBackend
from plugins.ratelimit.scopes import scopes_for
from plugins.ratelimit.window import BackendUnavailable, Scope

# 40 characters of text (role names count too): an estimate of 10 tokens.
CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "x" * 36}]}


def exchange(body: dict[str, Any] | None = None, identity: Identity | None = None,
             ip: str = "10.0.0.7", model: str = "mock-small") -> Exchange:
    return Exchange(request_id="req_1", surface="openai", shape="openai", operation="chat",
                    path="/v1/chat/completions", headers={}, query={}, client_ip=ip,
                    user_agent=None, body=body or CHAT, model=model, identity=identity)


class Metrics:
    """Records the calls the plugin makes on ``gateway.metrics``."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def ratelimit_backend_failure(self, failure_mode: str) -> None:
        self.failures.append(failure_mode)


def plugin(backend: Any = None, workers: int = 1, metrics: Any = None,
           **options: Any) -> Plugin:
    gateway = SimpleNamespace(config=make_config({"server": {"workers": workers}}),
                              readiness={}, metrics=metrics)
    return Plugin(RateLimitConfig(**options), gateway, backend=backend)


def key(key_id: str = "k1", account: str = "acme", **limits: Any) -> Identity:
    return Identity(account_id=account, key_id=key_id, limits=limits)


async def test_without_auth_the_client_ip_is_the_caller():
    config = RateLimitConfig(defaults=Limits(rpm=5))
    assert scopes_for(exchange(ip="192.0.2.9"), config) == \
        (Scope("ip:192.0.2.9", "ip", rpm=5),)


async def test_key_and_account_limits_override_the_defaults():
    config = RateLimitConfig(defaults=Limits(rpm=5, tpm=1000),
                             account_defaults=Limits(rpm=50, concurrent=9))
    identity = key(rpm=7, tpm=None, account_concurrent=3)
    assert scopes_for(exchange(identity=identity), config) == (
        Scope("key:k1", "key", rpm=7, tpm=1000),
        Scope("account:acme", "account", rpm=50, concurrent=3),
    )


async def test_model_limits_apply_to_everyone_and_per_key():
    config = RateLimitConfig(model_limits={"mock-small": ModelLimits(
        concurrent=100, per_key=Limits(rpm=2))})
    assert scopes_for(exchange(identity=key()), config) == (
        Scope("model:mock-small", "model", concurrent=100),
        Scope("key:k1|model:mock-small", "key_model", rpm=2),
    )
    assert scopes_for(exchange(identity=key(), model="other"), config) == ()


async def test_allowed_requests_carry_the_openai_headers():
    limiter = plugin(defaults=Limits(rpm=3, tpm=1000))
    ex = exchange()
    await limiter.on_request(ex)
    assert ex.response_headers == {
        "x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "990",
        "x-ratelimit-reset-tokens": "1m0s",
    }


async def test_over_the_limit_is_a_429_with_retry_after():
    clock = iter([100.0, 112.5])
    limiter = plugin(MemoryBackend(clock=lambda: next(clock)), defaults=Limits(rpm=1))
    await limiter.on_request(exchange(identity=key("secret-key-id")))
    ex = exchange(identity=key("secret-key-id"))
    with pytest.raises(GatewayError) as caught:
        await limiter.on_request(ex)
    err = caught.value
    assert (err.status, err.type, err.code) == (429, "rate_limit_error", "rate_limit_exceeded")
    assert (err.headers["retry-after"], err.headers["retry-after-ms"]) == ("48", "47500")
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.headers["x-ratelimit-reset-requests"] == "47.5s"
    assert err.message == ("Rate limit reached for requests per minute (per API key). "
                           "Please try again in 47.5s.")
    assert limiter.counters.rejected[("key", "requests")] == 1
    # What onyproxy_ratelimited_total reads; nothing to release for a refused request.
    assert ex.state["ratelimit"] == {"scope": "key", "limit": "requests"}


async def test_a_request_larger_than_the_token_limit_gets_no_retry_after():
    limiter = plugin(defaults=Limits(tpm=10))
    with pytest.raises(GatewayError) as caught:
        await limiter.on_request(exchange({**CHAT, "max_tokens": 500}))
    assert "retry-after" not in caught.value.headers
    assert caught.value.message.startswith("Request too large")


async def test_on_complete_frees_the_slot_once():
    limiter = plugin(defaults=Limits(concurrent=1))
    first = exchange()
    await limiter.on_request(first)
    with pytest.raises(GatewayError):
        await limiter.on_request(exchange())
    await limiter.on_complete(first)
    await limiter.on_complete(first)  # harmless, and frees nothing twice
    second = exchange()
    await limiter.on_request(second)
    with pytest.raises(GatewayError):
        await limiter.on_request(exchange())


@pytest.mark.parametrize(("reported", "provider", "expected"), [
    (True, "mock", 25), (False, None, 0), (False, "mock", 10)])
async def test_tokens_are_corrected_to_what_the_call_cost(reported, provider, expected):
    limiter = plugin(defaults=Limits(tpm=1000))
    ex = exchange()
    await limiter.on_request(ex)
    ex.usage.prompt_tokens, ex.usage.completion_tokens = 20, 5
    ex.usage.reported, ex.provider = reported, provider
    await limiter.on_complete(ex)
    follow = exchange()
    await limiter.on_request(follow)
    assert follow.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - expected - 10)


class DownBackend:
    """A backend whose store is unreachable until ``up`` is set."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def acquire(self, ticket):
        self.calls += 1
        if not self.up:
            raise BackendUnavailable("ConnectionError")
        return await MemoryBackend().acquire(ticket)

    async def finish(self, ticket, used_tokens: int) -> None: ...


async def test_failure_mode_closed_answers_503_and_logs_once(caplog):
    limiter = plugin(DownBackend(), defaults=Limits(rpm=5), failure_mode="closed")
    for _ in range(3):
        with pytest.raises(GatewayError) as caught:
            await limiter.on_request(exchange())
        assert (caught.value.status, caught.value.code) == (503, "rate_limit_unavailable")
    assert limiter.counters.failed_closed == 3
    assert len([r for r in caplog.records if r.name == "onyproxy.ratelimit"]) == 1


async def test_failure_mode_open_lets_through_counts_and_logs_the_recovery(caplog):
    backend, metrics = DownBackend(), Metrics()
    limiter = plugin(backend, metrics=metrics, defaults=Limits(rpm=5), failure_mode="open")
    with caplog.at_level(logging.WARNING, logger="onyproxy.ratelimit"):
        for _ in range(3):
            ex = exchange()
            await limiter.on_request(ex)
            assert "x-ratelimit-limit-requests" not in ex.response_headers
            await limiter.on_complete(ex)
        backend.up = True
        await limiter.on_request(exchange())
        await limiter.on_request(exchange())
    assert limiter.counters.failed_open == 3
    assert metrics.failures == ["open"] * 3
    messages = [r.getMessage() for r in caplog.records if r.name == "onyproxy.ratelimit"]
    assert len(messages) == 2
    assert "unreachable" in messages[0] and "letting requests through" in messages[0]
    assert "reachable again" in messages[1]


@pytest.mark.parametrize(("body", "expected"), [
    ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "x" * 396},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 9999}}]}],
      "max_completion_tokens": 50}, 104 + 50),  # 396 + "user" + "text" + "image_url"
    ({"system": "s" * 40, "messages": [{"role": "user", "content": "u" * 36}],
      "max_tokens": 1024}, 20 + 1024),
    ({"systemInstruction": {"parts": [{"text": "s" * 8}]},
      "contents": [{"role": "user", "parts": [{"text": "t" * 8},
                                              {"inlineData": {"data": "B" * 5000}}]}],
      "generationConfig": {"maxOutputTokens": 7}}, 5 + 7),
    ({"instructions": "i" * 4, "input": [{"role": "user", "content": "c" * 4}],
      "max_output_tokens": 3}, 3 + 3),
    ({"input": ["one", "two"]}, 2),
    ({}, 1),
])
def test_token_estimate_reads_every_client_shape(body, expected):
    assert estimate_tokens(body) == expected


def test_memory_backend_with_workers_is_refused_by_the_constructor_too():
    with pytest.raises(ConfigError, match=r"server\.workers = 2"):
        plugin(workers=2, defaults=Limits(rpm=5))


@pytest.mark.parametrize(("us", "text"), [
    (0, "0s"), (1, "1ms"), (12_000, "12ms"), (999_999, "1s"), (1_500_000, "1.5s"),
    (59_880_000, "59.88s"), (360_000_000, "6m0s"), (3_723_000_000, "1h2m3s")])
def test_durations_are_written_as_openai_does(us, text):
    assert format_duration(us) == text


def config_problems(entry: dict[str, Any], **sections: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        make_config({"pipeline": [{"name": "routing"}, {"name": "ratelimit", **entry}],
                     **sections})
    return caught.value.problems


def test_memory_backend_with_several_workers_is_refused_at_start():
    (problem,) = config_problems({"backend": "memory"}, server={"workers": 4})
    assert problem.startswith("test.yaml: pipeline[1].backend: the memory backend counts in "
                              "each process separately")
    assert "backend: redis" in problem


def test_config_mistakes_name_their_key():
    problems = config_problems({"backend": "redis", "defaults": {"rpm": 0, "rpn": 5},
                                "model_limits": {"gpt-9": {"rpm": 5}}})
    assert problems == [
        "test.yaml: pipeline[1].defaults.rpn: unknown key (known keys: rpm, tpm, concurrent)",
        "test.yaml: pipeline[1].defaults.rpm: expected a positive number, got 0",
    ]
    problems = config_problems({"backend": "redis", "model_limits": {"gpt-9": {"rpm": 5}}})
    assert problems == [
        "test.yaml: pipeline[1].url: required with backend: redis "
        "(e.g. redis://127.0.0.1:6379/0)",
        "test.yaml: pipeline[1].model_limits.gpt-9: unknown model 'gpt-9' (known: mock-small)",
    ]


class CountingBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.finished = 0

    async def finish(self, ticket, used_tokens: int) -> None:
        self.finished += 1
        await super().finish(ticket, used_tokens)


@pytest.mark.parametrize(("defaults", "round_trips"), [
    (Limits(rpm=5), 0), (Limits(rpm=5, tpm=100), 1), (Limits(concurrent=5), 1)])
async def test_on_complete_calls_the_backend_only_when_there_is_work(defaults, round_trips):
    backend = CountingBackend()
    limiter = plugin(backend, defaults=defaults)
    ex = exchange()
    await limiter.on_request(ex)
    ex.usage.prompt_tokens, ex.usage.reported = 3, True  # not the estimate of 10
    await limiter.on_complete(ex)
    assert backend.finished == round_trips
