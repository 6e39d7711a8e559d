"""Metering in a running gateway over loopback: every provider, streamed and not, gives an event
with the exact tokens the provider reported and their exact cost; a client that leaves mid-stream
is metered for what it got, flagged ``partial``."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from fakes.anthropic_upstream import start_fake_anthropic
from fakes.control import root_url
from fakes.gemini_upstream import start_fake_gemini
from fakes.openai_upstream import Behaviour

from onyproxy.appkeys import GATEWAY

PRICE = {"input": "2.5", "cached_input": "1.25", "output": "10"}
ASK = "how tall is Galata tower"


async def wait_for_events(gw: Any, count: int, timeout: float = 10.0) -> list:
    """The stored events once there are ``count`` of them (the flusher runs in the
    background); fails after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            events = await gw.store.list_usage_events()
            if len(events) >= count:
                return events
            await asyncio.sleep(0.02)


def metering_config(openai_url: str, anthropic_url: str, gemini_url: str) -> dict[str, Any]:
    def target(provider: str, model: str) -> dict[str, Any]:
        return {"targets": [{"provider": provider, "model": model, "price": PRICE}]}

    return {
        "providers": {"up": {"type": "openai", "base_url": openai_url, "api_key": "sk-up"},
                      "claude": {"type": "anthropic", "base_url": anthropic_url,
                                 "api_key": "sk-ant"},
                      "gem": {"type": "gemini", "base_url": gemini_url, "api_key": "g-key"},
                      "mock": {"type": "mock"}},
        "models": {"via-openai": target("up", "gpt-4o-mini"),
                   "via-claude": target("claude", "claude-sonnet-4-5"),
                   "via-gemini": target("gem", "gemini-2.5-flash"),
                   "via-mock": target("mock", "mock-small"),
                   "via-claude-search": {**target("claude", "claude-sonnet-4-5"),
                                         "allow": ["web_search"]}},
        "pipeline": [{"name": "routing", "retries": 0, "timeout_s": 5},
                     {"name": "metering", "flush_interval_s": 0.05}],
    }


@pytest.fixture
async def metered(gateway, aiohttp_server, fake_openai):
    claude_server, _ = await start_fake_anthropic(aiohttp_server)
    gemini_server, _ = await start_fake_gemini(aiohttp_server)
    server = await gateway(metering_config(fake_openai.base_url, root_url(claude_server),
                                           root_url(gemini_server)))
    return server, fake_openai


# (surface, path, body) for one question to ``model``; streams ask for the usage chunk.
def call(surface: str, model: str, stream: bool) -> tuple[str, dict[str, Any]]:
    if surface == "openai":
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": ASK}]}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return "/v1/chat/completions", body
    if surface == "anthropic":
        return "/v1/messages", {"model": model, "max_tokens": 100, "stream": stream,
                                "messages": [{"role": "user", "content": ASK}]}
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/{model}:{method}", {"contents": [{"role": "user",
                                                              "parts": [{"text": ASK}]}]}


def client_usage(surface: str, stream: bool, text: str) -> tuple[int, int]:
    """(prompt, completion) tokens as the client was told them."""
    objects = [json.loads(line[6:]) for line in text.splitlines()
               if line.startswith("data: {")] if stream else [json.loads(text)]
    prompt = completion = 0
    for obj in objects:
        if surface == "openai" and obj.get("usage"):
            prompt, completion = obj["usage"]["prompt_tokens"], obj["usage"]["completion_tokens"]
        elif surface == "anthropic":
            usage = obj.get("usage") or obj.get("message", {}).get("usage") or {}
            prompt = usage.get("input_tokens", prompt) or prompt
            completion = usage.get("output_tokens", completion)
        elif surface == "gemini" and obj.get("usageMetadata"):
            meta = obj["usageMetadata"]
            prompt = meta["promptTokenCount"]
            completion = meta.get("candidatesTokenCount", 0) + meta.get("thoughtsTokenCount", 0)
    return prompt, completion


ROUTES = [("openai", "via-openai"), ("openai", "via-claude"), ("openai", "via-gemini"),
          ("openai", "via-mock"), ("anthropic", "via-claude"), ("gemini", "via-gemini"),
          ("anthropic", "via-mock")]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("surface", "model"), ROUTES)
async def test_each_provider_gives_exact_tokens_and_cost(metered, surface, model, stream):
    server, _ = metered
    path, body = call(surface, model, stream)
    async with aiohttp.ClientSession() as session, \
            session.post(server.make_url(path), json=body) as resp:
        text = await resp.text()
        assert resp.status == 200, text
        request_id = resp.headers["x-request-id"]
    prompt, completion = client_usage(surface, stream, text)
    assert prompt > 0 and completion > 0
    (event,) = await wait_for_events(server.app[GATEWAY], 1)
    assert event.request_id == request_id and event.streamed is stream
    assert (event.input_tokens, event.output_tokens) == (prompt, completion)
    assert event.cost_usd == (prompt * Decimal("2.5") + completion * 10) / 1_000_000
    assert event.flags == [] and event.surface == surface and event.model == model
    assert ASK not in repr(event)


async def test_a_client_leaving_mid_stream_is_metered_as_partial(metered):
    server, fake = metered
    fake.script(Behaviour.trickle(0.05))
    path, body = call("openai", "via-openai", True)
    body["messages"][0]["content"] = "tell me " + "a long story " * 10
    # Leaving the block closes the connection before the answer (and its usage) ends.
    async with aiohttp.ClientSession() as session, \
            session.post(server.make_url(path), json=body) as resp:
        assert resp.status == 200
        received = [await resp.content.readline() for _ in range(6)]
        assert any(b"content" in line for line in received)
    (event,) = await wait_for_events(server.app[GATEWAY], 1)
    assert event.flags == ["partial", "estimated"] and event.status == 200
    assert 0 < event.output_tokens < 25 and event.input_tokens > 0
    assert event.cost_usd > 0 and event.billable


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_provider_run_web_searches_are_counted_and_priced_per_use(metered, stream):
    server, _ = metered
    path, body = call("anthropic", "via-claude-search", stream)
    body["messages"][0]["content"] = "search twice: " + ASK
    body["tools"] = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]
    async with aiohttp.ClientSession() as session, \
            session.post(server.make_url(path), json=body) as resp:
        text = await resp.text()
        assert resp.status == 200, text
    prompt, completion = client_usage("anthropic", stream, text)
    (event,) = await wait_for_events(server.app[GATEWAY], 1)
    assert event.server_tool_uses == {"web_search": 2}
    # Tokens at the target's price, and each search at the catalog's $10 per 1000.
    tokens = (prompt * Decimal("2.5") + completion * 10) / 1_000_000
    assert event.cost_usd == tokens + 2 * Decimal("0.01") and event.flags == []
