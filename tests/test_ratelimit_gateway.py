"""The ``ratelimit`` plugin in a real gateway over loopback: headers, error shapes, TPM, outages."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import openai
import pytest
from redis_server import RedisServer

from onyproxy.appkeys import GATEWAY
from plugins.ratelimit.estimate import estimate_tokens

CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "count these words"}]}
RATE_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")


def pipeline(**options: Any) -> dict[str, Any]:
    return {"pipeline": [{"name": "ratelimit", **options},
                         {"name": "routing", "retries": 0, "timeout_s": 10}]}


@pytest.fixture
def redis(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        yield server


async def post(server, path: str = "/v1/chat/completions", body: dict | None = None,
               ) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as http, \
            http.post(server.make_url(path), json=body or CHAT) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def test_answers_json_and_streamed_carry_the_rate_headers(gateway):
    server = await gateway(pipeline(defaults={"rpm": 5, "tpm": 10_000}))
    status, _, headers = await post(server)
    assert status == 200
    assert [headers[name] for name in RATE_HEADERS] == \
        ["5", "4", "1m0s", "10000", str(10_000 - estimate_tokens(CHAT)), "1m0s"]
    async with aiohttp.ClientSession() as http, http.post(
            server.make_url("/v1/chat/completions"), json={**CHAT, "stream": True}) as resp:
        await resp.read()
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["x-ratelimit-remaining-requests"] == "3"


async def test_the_openai_sdk_sees_a_rate_limit_error(gateway):
    server = await gateway(pipeline(defaults={"rpm": 1}))
    async with openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="sk-test",
                                  max_retries=0) as client:
        await client.chat.completions.create(**CHAT)
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(**CHAT)
    err = caught.value
    assert err.status_code == 429
    assert err.code == "rate_limit_exceeded"
    assert err.type == "rate_limit_error"
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(err.response.headers["retry-after"]) <= 60
    assert err.response.headers["x-request-id"].startswith("req_")


ANTHROPIC = ("/v1/messages", {"model": "mock-small", "max_tokens": 16,
                              "messages": [{"role": "user", "content": "hi"}]})
GEMINI = ("/v1beta/models/mock-small:generateContent",
          {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})


@pytest.mark.parametrize(("path", "body", "shape"), [
    (*ANTHROPIC, {"type": "error", "error": {"type": "rate_limit_error"}}),
    (*GEMINI, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}),
])
async def test_429_comes_in_the_shape_of_the_api_called(gateway, path, body, shape):
    server = await gateway(pipeline(defaults={"rpm": 1}))
    await post(server)  # the client IP's only request this minute
    status, answer, headers = await post(server, path, body)
    if status == 404:
        pytest.skip(f"{path} is not served by this build yet")
    assert status == 429
    assert answer["error"].items() >= shape["error"].items()
    assert answer.get("type") == shape.get("type")
    assert "retry-after" in headers and headers["x-ratelimit-remaining-requests"] == "0"


async def test_tokens_per_minute_count_the_real_usage_streams_included(gateway):
    server = await gateway(pipeline(defaults={"tpm": 1000}))
    limiter = server.app[GATEWAY].pipeline.get("ratelimit")
    _, first, headers = await post(server)
    assert headers["x-ratelimit-remaining-tokens"] == str(1000 - estimate_tokens(CHAT))
    spent = first["usage"]["total_tokens"]
    streamed = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as http, \
            http.post(server.make_url("/v1/chat/completions"), json=streamed) as resp:
        text = await resp.text()
        assert resp.headers["x-ratelimit-remaining-tokens"] == \
            str(1000 - spent - estimate_tokens(streamed))
    spent += stream_usage(text)["total_tokens"]
    # on_complete of a stream may finish just after the client read the last byte
    log = limiter.backend.logs["ip:127.0.0.1"]
    for _ in range(200):
        if log.token_sum == spent:
            break
        await asyncio.sleep(0.02)
    _, _, headers = await post(server)
    assert headers["x-ratelimit-remaining-tokens"] == str(1000 - spent - estimate_tokens(CHAT))


def stream_usage(text: str) -> dict[str, int]:
    events = [json.loads(line[6:]) for line in text.splitlines()
              if line.startswith("data: {")]
    return next(e["usage"] for e in events if e.get("usage"))


async def until_status(server, status: int, attempts: int = 200) -> int:
    """Post until the gateway answers ``status`` (a restarted Redis takes a moment)."""
    for _ in range(attempts):
        got, _, _ = await post(server)
        if got == status:
            return got
        await asyncio.sleep(0.05)
    return got


async def test_redis_down_with_failure_mode_closed_answers_503(gateway, redis, caplog):
    server = await gateway(pipeline(backend="redis", url=redis.url, failure_mode="closed",
                                    defaults={"rpm": 100}))
    assert (await post(server))[0] == 200
    async with aiohttp.ClientSession() as http:
        assert (await http.get(server.make_url("/readyz"))).status == 200
    redis.kill()
    for _ in range(3):
        status, answer, _ = await post(server)
        assert status == 503
        assert answer["error"]["code"] == "rate_limit_unavailable"
    async with aiohttp.ClientSession() as http:
        ready = await http.get(server.make_url("/readyz"))
        assert (ready.status, (await ready.json())["checks"]["ratelimit"]) == (503, False)
    redis.start()
    assert await until_status(server, 200) == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "onyproxy.ratelimit"]
    assert len(lines) == 2 and "unreachable" in lines[0] and "reachable again" in lines[1]


async def test_redis_down_with_failure_mode_open_lets_requests_through(gateway, redis, caplog):
    server = await gateway(pipeline(backend="redis", url=redis.url, failure_mode="open",
                                    defaults={"rpm": 2}))
    limiter = server.app[GATEWAY].pipeline.get("ratelimit")
    assert [(await post(server))[0] for _ in range(3)] == [200, 200, 429]
    redis.kill()
    with caplog.at_level(logging.WARNING, logger="onyproxy.ratelimit"):
        assert [(await post(server))[0] for _ in range(4)] == [200] * 4
    assert limiter.counters.failed_open == 4
    lines = [r.getMessage() for r in caplog.records if r.name == "onyproxy.ratelimit"]
    assert len(lines) == 1 and "letting requests through unchecked" in lines[0]
    async with aiohttp.ClientSession() as http:
        assert (await http.get(server.make_url("/readyz"))).status == 200


async def test_behind_auth_each_key_has_its_own_limits(gateway):
    """With the auth plugin in front, the caller is the API key and its own rpm wins."""
    from onyproxy.accounts import create_account
    from onyproxy.keys import create_key

    pepper = "ratelimit-pepper-0123456789abcdef"
    server = await gateway({"security": {"key_pepper": pepper}, "pipeline": [
        {"name": "auth", "negative_ttl_s": 0}, *pipeline(defaults={"rpm": 100})["pipeline"]]})
    store = server.app[GATEWAY].store
    account = await create_account(store, email="ada@example.com", name="Ada")
    strict = (await create_key(store, account.id, pepper=pepper, name="strict", rpm=2)).secret
    plain = (await create_key(store, account.id, pepper=pepper, name="plain")).secret
    statuses = {}
    async with aiohttp.ClientSession() as http:
        for name, secret in (("strict", strict), ("plain", plain)):
            statuses[name] = []
            for _ in range(3):
                async with http.post(server.make_url("/v1/chat/completions"), json=CHAT,
                                     headers={"authorization": f"Bearer {secret}"}) as resp:
                    statuses[name].append(resp.status)
                    limit = resp.headers["x-ratelimit-limit-requests"]
            statuses[name].append(int(limit))
    assert statuses == {"strict": [200, 200, 429, 2], "plain": [200, 200, 200, 100]}
