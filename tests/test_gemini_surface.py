"""The Gemini surface's edges and the Gemini adapter's failure handling, over loopback HTTP.

Bad input answers in Gemini's error shape naming the field; upstream errors, quota delays,
bad provider keys and in-stream errors are translated faithfully; usage is metered from
``usageMetadata``; keys in the query string go nowhere.
"""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest
from fakes.control import UpstreamController, root_url
from fakes.gemini_upstream import start_fake_gemini

from onyproxy.providers.gemini import SKIP_SIGNATURE

HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello gateway"}]}]}


@pytest.fixture
async def fake_gemini(aiohttp_server) -> UpstreamController:
    server, control = await start_fake_gemini(aiohttp_server)
    control.base_url = root_url(server)  # type: ignore[attr-defined]
    return control


@pytest.fixture
async def gw(gateway, fake_gemini, fake_openai):
    def target(provider: str, model: str) -> dict:
        return {"targets": [{"provider": provider, "model": model}]}

    server = await gateway({
        "providers": {
            "google": {"type": "gemini", "base_url": fake_gemini.base_url, "api_key": "gk-up"},
            "oai": {"type": "openai", "base_url": fake_openai.base_url, "api_key": "sk-up"}},
        "models": {"gem": target("google", "gemini-2.5-flash"),
                   "team/gem": target("google", "gemini-2.5-flash"),
                   "gem3": target("google", "gemini-3-pro-preview"),
                   "oai": target("oai", "gpt-4o-mini")},
    })
    async with aiohttp.ClientSession(base_url=server.make_url("")) as http:
        yield http


async def post(http, path: str, body) -> tuple[int, object]:
    async with http.post(path, json=body) as resp:
        return resp.status, await resp.json(content_type=None)


def gemini_error(expected: int, status: int, body) -> dict:
    assert status == expected
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "status"}
    assert body["error"]["code"] == expected
    return body["error"]


@pytest.mark.parametrize(("path", "body", "named"), [
    ("/v1beta/models/gem:generateContent", {}, "contents"),
    ("/v1beta/models/gem:generateContent", {"contents": [{"parts": "hi"}]},
     "contents[0].parts"),
    ("/v1/models/oai:generateContent", {**HELLO, "generationConfig": {"topK": 3}},
     "generationConfig.topK"),
    ("/v1/models/oai:generateContent", {**HELLO, "tools": [{"codeExecution": {}}]},
     "tools[0].codeExecution"),
    ("/v1beta/models/gem:embedContent", {"content": {"parts": []}}, "content"),
    ("/v1beta/models/gem:batchEmbedContents", {"requests": []}, "requests"),
])
async def test_bad_input_is_a_gemini_shaped_400_naming_the_field(gw, path, body, named):
    status, answer = await post(gw, path, body)
    error = gemini_error(400, status, answer)
    assert error["status"] == "INVALID_ARGUMENT" and named in error["message"]


async def test_unknown_model_and_method_are_gemini_shaped_404s(gw):
    status, answer = await post(gw, "/v1beta/models/nope:generateContent", HELLO)
    assert gemini_error(404, status, answer)["status"] == "NOT_FOUND"
    status, answer = await post(gw, "/v1/models/gem:countTokens", HELLO)
    assert gemini_error(404, status, answer)["status"] == "NOT_FOUND"


async def test_model_names_may_contain_a_slash(gw, fake_gemini):
    status, answer = await post(gw, "/v1beta/models/team/gem:generateContent", HELLO)
    assert status == 200 and answer["candidates"][0]["content"]["parts"][0]["text"]
    assert fake_gemini.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"


async def test_stream_without_alt_sse_is_a_json_array(gw, fake_openai):
    status, answer = await post(gw, "/v1beta/models/oai:streamGenerateContent", HELLO)
    assert status == 200 and isinstance(answer, list) and len(answer) == 1
    assert answer[0]["candidates"][0]["content"]["parts"] == [{"text": "echo: hello gateway"}]


async def test_query_key_is_neither_forwarded_nor_logged(gw, fake_gemini, caplog):
    caplog.set_level(logging.INFO, logger="onyproxy.access")
    path = "/v1beta/models/gem:streamGenerateContent?alt=sse&key=canary-key-9d2e"
    async with gw.post(path, json=HELLO) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        text = await resp.text()
    assert text.startswith("data: {") and text.endswith("\n\n")
    assert fake_gemini.last.query == {"alt": "sse"}
    assert fake_gemini.last.headers["x-goog-api-key"] == "gk-up"
    assert "canary-key-9d2e" not in caplog.text
    assert all("canary" not in json.dumps(r.__dict__.get("fields")) for r in caplog.records)


async def test_usage_with_thoughts_is_metered_from_the_stream(gw, caplog):
    caplog.set_level(logging.INFO, logger="onyproxy.access")
    body = {**HELLO, "generationConfig": {"thinkingConfig": {"thinkingBudget": 512}}}
    async with gw.post("/v1beta/models/gem:streamGenerateContent?alt=sse", json=body) as resp:
        events = [json.loads(line[6:]) for line in (await resp.text()).splitlines()
                  if line.startswith("data: ")]
    meta = events[-1]["usageMetadata"]
    assert meta["thoughtsTokenCount"] == 12
    fields = next(r.fields for r in caplog.records if r.name == "onyproxy.access")
    assert fields["prompt_tokens"] == meta["promptTokenCount"]
    assert fields["completion_tokens"] == meta["candidatesTokenCount"] + 12


async def test_gemini_400_passes_through_with_its_message(gw, fake_gemini):
    body = {**HELLO, "generationConfig": {"maxTokens": 5}}  # not a Gemini field
    status, answer = await post(gw, "/v1beta/models/gem:generateContent", body)
    error = gemini_error(400, status, answer)
    assert 'Unknown name "maxTokens"' in error["message"]


async def test_bad_provider_key_is_a_502_not_the_clients_400(gw, fake_gemini):
    fake_gemini.api_keys = {"some-other-key"}
    status, answer = await post(gw, "/v1beta/models/gem:generateContent", HELLO)
    error = gemini_error(502, status, answer)
    assert "credentials" in error["message"]


async def test_quota_retry_delay_from_retry_info_becomes_retry_after(gw, fake_gemini):
    fake_gemini.fail(429, retry_after=7)
    async with gw.post("/v1/chat/completions", json={
            "model": "gem", "messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert resp.status == 429
        assert resp.headers["retry-after"] == "7"
        assert (await resp.json())["error"]["type"] == "rate_limit_error"


async def test_error_inside_a_gemini_stream_reaches_an_openai_client(gw, fake_gemini):
    fake_gemini.error_in_stream(after_events=1)
    async with gw.post("/v1/chat/completions", json={
            "model": "gem", "stream": True,
            "messages": [{"role": "user", "content": "one two three four five"}]}) as resp:
        lines = [line for line in (await resp.text()).splitlines() if line.startswith("data:")]
    last = json.loads(lines[-1][6:])
    assert last["error"]["code"] == "upstream_stream_error"
    assert json.loads(lines[0][6:])["choices"][0]["delta"]["content"]


async def test_replayed_calls_without_signature_get_the_documented_stand_in_for_gemini_3(
        gw, fake_gemini):
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    status, _ = await post(gw, "/v1/chat/completions", {"model": "gem3", "messages": [
        {"role": "user", "content": "weather in Paris"},
        {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "call_2"}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "sunny"}]})
    assert status == 200
    parts = fake_gemini.last.body["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in parts] == [SKIP_SIGNATURE, None]
