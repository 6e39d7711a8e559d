"""Paid or third-party provider features stay off until ``models.<name>.allow`` names them.

End to end over loopback: what a client sends on each surface, what reaches the fake provider
(nothing, when refused), translation to another provider's API, ``anthropic-beta`` values and
the config that allows them.
"""

import aiohttp
import pytest
from conftest import make_config
from fakes.anthropic_upstream import start_fake_anthropic
from fakes.control import root_url
from multidict import CIMultiDict

from onyproxy.config import ConfigError
from onyproxy.provider_features import FEATURES, uses

ASK = [{"role": "user", "content": "hello"}]
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 50}


@pytest.fixture
async def served(gateway, aiohttp_server, fake_openai):
    anthropic_server, claude = await start_fake_anthropic(aiohttp_server)

    def model(provider, name, *allow):
        return {"targets": [{"provider": provider, "model": name}], "allow": list(allow)}

    server = await gateway({
        "providers": {
            "claude": {"type": "anthropic", "base_url": root_url(anthropic_server),
                       "api_key": "sk-ant-operator", "allowed_betas": ["tools-2024-04-04"]},
            "up": {"type": "openai", "base_url": fake_openai.base_url, "api_key": "sk-up"},
            "mock": {"type": "mock"}},
        "models": {
            "claude": model("claude", "claude-sonnet-4-5"),
            "claude-open": model("claude", "claude-sonnet-4-5", "web_search", "mcp_servers"),
            "gpt": model("up", "gpt-4o-mini"),
            "gpt-open": model("up", "gpt-4o-mini", "service_tier", "store", "web_search"),
            "mock-small": model("mock", "mock-small")},
    })
    async with aiohttp.ClientSession(base_url=server.make_url("")) as session:
        yield session, claude, fake_openai


async def post(session, path, body, headers=None):
    async with session.post(path, json=body, headers={"x-api-key": "k", **(headers or {})}) \
            as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("extra, param", [
    ({"service_tier": "priority"}, "service_tier"),
    ({"service_tier": "flex"}, "service_tier"),
    ({"store": True}, "store"),
    ({"web_search_options": {}}, "web_search_options"),
])
async def test_openai_chat_fields_are_refused_naming_them_and_nothing_reaches_the_provider(
        served, extra, param):
    session, _, fake = served
    status, body = await post(session, "/v1/chat/completions",
                              {"model": "gpt", "messages": ASK, **extra})
    assert status == 400
    assert body["error"]["param"] == param and body["error"]["code"] == "feature_not_allowed"
    assert param in body["error"]["message"]
    assert fake.requests == []


async def test_openai_chat_fields_pass_when_the_model_allows_them(served):
    session, _, fake = served
    extra = {"service_tier": "priority", "store": True, "web_search_options": {}}
    status, _ = await post(session, "/v1/chat/completions",
                           {"model": "gpt-open", "messages": ASK, **extra})
    assert status == 200
    assert {k: fake.last.body[k] for k in extra} == extra
    status, _ = await post(session, "/v1/chat/completions",  # the default tier is no feature
                           {"model": "gpt", "messages": ASK, "service_tier": "auto"})
    assert status == 200


@pytest.mark.parametrize("extra, param", [
    ({"tools": [WEB_SEARCH]}, "tools"),
    ({"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]}, "tools"),
    ({"tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}]}, "tools"),
    ({"mcp_servers": [{"type": "url", "url": "https://evil.example/mcp", "name": "x"}]},
     "mcp_servers"),
    ({"tools": [{"type": "brand_new_tool_20270101", "name": "x"}]}, "tools"),
])
async def test_anthropic_server_tools_are_refused_in_anthropics_error_shape(served, extra, param):
    session, claude, _ = served
    status, body = await post(session, "/v1/messages",
                              {"model": "claude", "max_tokens": 50, "messages": ASK, **extra})
    assert status == 400 and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert f"'{param}" in body["error"]["message"]
    assert claude.requests == []


async def test_allowed_anthropic_server_tools_reach_the_provider(served):
    session, claude, _ = served
    mcp = [{"type": "url", "url": "https://mcp.example/sse", "name": "docs"}]
    status, _ = await post(session, "/v1/messages", {
        "model": "claude-open", "max_tokens": 50, "messages": ASK, "tools": [WEB_SEARCH],
        "mcp_servers": mcp})
    assert status == 200
    assert claude.last.body["tools"] == [WEB_SEARCH] and claude.last.body["mcp_servers"] == mcp
    # An ordinary function tool is no feature: no allow list needed.
    function = {"name": "f", "description": "d", "input_schema": {"type": "object"}}
    status, _ = await post(session, "/v1/messages", {
        "model": "claude", "max_tokens": 50, "messages": ASK, "tools": [function]})
    assert status == 200


async def test_translation_is_no_way_around_the_allow_list(served):
    session, claude, fake = served
    # An OpenAI client asking a Claude-served model for web search ...
    status, body = await post(session, "/v1/chat/completions", {
        "model": "claude", "messages": ASK, "web_search_options": {}})
    assert (status, body["error"]["param"]) == (400, "web_search_options")
    # ... and an Anthropic client asking an OpenAI-served model for a server tool.
    status, body = await post(session, "/v1/messages", {
        "model": "gpt", "max_tokens": 50, "messages": ASK, "tools": [WEB_SEARCH]})
    assert status == 400 and "web_search" in body["error"]["message"]
    assert claude.requests == [] and fake.requests == []


async def test_responses_are_not_stored_at_the_provider_unless_allowed(served):
    session, _, fake = served  # (the fake has no /responses: only what reached it counts)
    await post(session, "/v1/responses", {"model": "gpt", "input": "hi"})
    assert fake.last.path == "/v1/responses" and fake.last.body["store"] is False
    await post(session, "/v1/responses", {"model": "gpt-open", "input": "hi"})
    assert len(fake.requests) == 2 and "store" not in fake.last.body
    for extra in ({"store": True}, {"previous_response_id": "resp_other_account"},
                  {"background": True}, {"tools": [{"type": "web_search_preview"}]},
                  {"tools": [{"type": "mcp", "server_url": "https://x.example",
                              "server_label": "x"}]}):
        status, body = await post(session, "/v1/responses",
                                  {"model": "gpt", "input": "hi", **extra})
        assert status == 400 and body["error"]["code"] == "feature_not_allowed", extra
    assert len(fake.requests) == 2


async def test_gemini_grounding_tools_are_refused_in_geminis_error_shape(served):
    session, _, _ = served
    for tool in ({"googleSearch": {}}, {"google_search_retrieval": {}},
                 {"codeExecution": {}}, {"urlContext": {}}):
        status, body = await post(session, "/v1beta/models/mock-small:generateContent", {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}], "tools": [tool]})
        assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT", tool
        assert "tools[0]" in body["error"]["message"]


async def test_anthropic_betas_pass_only_when_the_provider_allows_them(served):
    session, claude, _ = served
    ask = {"model": "claude", "max_tokens": 50, "messages": ASK}
    status, body = await post(session, "/v1/messages", ask,
                              {"anthropic-beta": "tools-2024-04-04,mcp-client-2025-04-04"})
    assert status == 400 and "mcp-client-2025-04-04" in body["error"]["message"]
    assert claude.requests == []
    status, _ = await post(session, "/v1/messages", ask, {"anthropic-beta": "tools-2024-04-04"})
    assert status == 200 and claude.last.headers["anthropic-beta"] == "tools-2024-04-04"
    # Every header line counts, not only the first one.
    lines = CIMultiDict([("x-api-key", "k"), ("anthropic-beta", "tools-2024-04-04"),
                         ("anthropic-beta", "code-execution-2025-05-22")])
    async with session.post("/v1/messages", json=ask, headers=lines) as resp:
        assert resp.status == 400 and "code-execution" in (await resp.json())["error"]["message"]
    assert len(claude.requests) == 1


@pytest.mark.parametrize("shape, body, found", [
    ("anthropic", {"tools": [WEB_SEARCH, {"type": "bash_20250124", "name": "bash"}],
                   "container": "cntr_1", "speed": "fast", "inference_geo": "us"},
     ["web_search", "code_execution", "inference_geo", "speed"]),
    ("anthropic", {"service_tier": "auto", "speed": "standard",
                   "tools": [{"type": "text_editor_20250728", "name": "editor"},
                             {"type": "custom", "name": "f", "input_schema": {}}]}, []),
    ("openai", {"service_tier": "default", "store": False, "tools": [{"type": "function"}]},
     []),
    ("openai-responses", {"tools": [{"type": "file_search"}, {"type": "code_interpreter"},
                                    {"type": "image_generation"},
                                    {"type": "computer_use_preview"}, {"type": "shell"}],
                          "conversation": "conv_1", "prompt": {"id": "pmpt_1"}},
     ["file_search", "code_execution", "image_generation", "computer_use", "store", "store"]),
    ("gemini", {"tools": [{"functionDeclarations": []}, {"google_maps": {}},
                          {"fileSearch": {}}], "serviceTier": "PRIORITY",
                "cachedContent": "cachedContents/1", "store": True},
     ["google_maps", "file_search", "service_tier", "store", "store"]),
    ("gemini", {"serviceTier": "standard", "store": False}, []),
])
def test_what_turns_a_feature_on_in_each_api_shape(shape, body, found):
    assert [use.feature for use in uses(body, shape)] == found


def test_allow_names_are_validated_with_their_key_path():
    model = {"targets": [{"provider": "mock", "model": "m"}], "allow": ["web_serch"]}
    with pytest.raises(ConfigError) as caught:
        make_config({"models": {"m": model}})
    assert "models.m.allow: unknown feature 'web_serch'" in str(caught.value)
    model["allow"] = list(FEATURES)
    assert make_config({"models": {"m": model}}).models["m"].allow == list(FEATURES)
