"""``POST /v1/responses`` to an OpenAI target: relayed as is, usage read on the way.

The OpenAI adapter speaks the Responses API natively, so nothing is translated: the upstream
gets the client's request (with the target's model name) and the client gets the upstream's
bytes. A small fake Responses upstream here answers with payloads shaped like the examples in
OpenAI's API reference.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from openai import AsyncOpenAI

from onyproxy.appkeys import GATEWAY
from onyproxy.exchange import Usage
from onyproxy.pipeline import NoConfig
from onyproxy.providers.openai import OpenAIAdapter

USAGE = {"input_tokens": 36, "input_tokens_details": {"cached_tokens": 12},
         "output_tokens": 87, "output_tokens_details": {"reasoning_tokens": 5},
         "total_tokens": 123}


def response_object(model: str, status: str = "completed", usage: Any = USAGE,
                    output: list | None = None) -> dict[str, Any]:
    text = {"type": "output_text", "text": "Hi from upstream.", "annotations": []}
    message = {"type": "message", "id": "msg_67ccd3acc8d48190", "status": "completed",
               "role": "assistant", "content": [text]}
    return {
        "id": "resp_67ccd3a9da748190", "object": "response", "created_at": 1741476777,
        "status": status, "error": None, "incomplete_details": None, "instructions": None,
        "max_output_tokens": None, "model": model,
        "output": [message] if output is None else output,
        "parallel_tool_calls": True, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "store": True, "temperature": 1.0,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
        "truncation": "disabled", "usage": usage, "user": None, "metadata": {},
    }


def stream_events(model: str) -> list[dict[str, Any]]:
    item = {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant",
            "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    done_part = {**part, "text": "Hi there"}
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events = [
        {"type": "response.created", "response": response_object(model, "in_progress", None, [])},
        {"type": "response.in_progress",
         "response": response_object(model, "in_progress", None, [])},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": part},
        {"type": "response.output_text.delta", **where, "delta": "Hi", "logprobs": []},
        {"type": "response.output_text.delta", **where, "delta": " there", "logprobs": []},
        {"type": "response.output_text.done", **where, "text": "Hi there", "logprobs": []},
        {"type": "response.content_part.done", **where, "part": done_part},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {**item, "status": "completed", "content": [done_part]}},
        {"type": "response.completed", "response": response_object(model)},
    ]
    return [{**event, "sequence_number": n} for n, event in enumerate(events)]


class FakeResponses:
    """``POST /v1/responses``, recording each body; streams when asked."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[Any] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        self.headers.append(request.headers)
        if not body.get("stream"):
            return web.json_response(response_object(body["model"]))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for event in stream_events(body["model"]):
            await resp.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        await resp.write_eof()
        return resp


class UsageRecorder:
    """A test plugin keeping each exchange's usage and provider when it completes."""

    name = "usage-recorder"
    Config = NoConfig

    def __init__(self, config: Any, gateway: Any) -> None:
        self.seen: list[tuple[str | None, Usage]] = []

    async def on_complete(self, ex) -> None:
        self.seen.append((ex.provider, ex.usage))


@pytest.fixture
async def upstream(aiohttp_server) -> tuple[FakeResponses, str]:
    fake = FakeResponses()
    app = web.Application()
    app.router.add_post("/v1/responses", fake.handle)
    server = await aiohttp_server(app)
    return fake, str(server.make_url("/v1"))


@pytest.fixture
async def served(gateway, upstream):
    fake, base_url = upstream
    server = await gateway({
        "providers": {"oa": {"type": "openai", "base_url": base_url, "api_key": "sk-oa"},
                      "mock": {"type": "mock"}},
        "models": {"gpt-r": {"targets": [{"provider": "oa", "model": "gpt-4.1-mini"}],
                             "allow": ["web_search", "store"]},
                   "mixed": {"targets": [{"provider": "mock", "model": "echo"},
                                         {"provider": "oa", "model": "gpt-4.1-mini"}],
                             "allow": ["web_search"]}},
        "pipeline": [{"name": "routing", "retries": 0, "timeout_s": 5},
                     {"name": "test_responses_passthrough:UsageRecorder"}],
    })
    client = AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="gw-key", max_retries=0)
    yield server, fake, client
    await client.close()


def recorded(server) -> list[tuple[str | None, Usage]]:
    return server.app[GATEWAY].pipeline.get("usage-recorder").seen


async def test_request_reaches_openai_untranslated_with_the_target_model(served):
    _, fake, client = served
    tools = [{"type": "web_search"}, {"type": "function", "name": "f", "parameters": {},
                                      "strict": True}]
    raw = await client.responses.with_raw_response.create(
        model="gpt-r", input="hi", instructions="Be brief.", previous_response_id="resp_1",
        tools=tools, store=True)
    assert raw.headers["x-onyproxy-provider"] == "oa"
    assert fake.bodies == [{"model": "gpt-4.1-mini", "input": "hi", "instructions": "Be brief.",
                            "previous_response_id": "resp_1", "tools": tools, "store": True}]
    assert fake.headers[0]["authorization"] == "Bearer sk-oa"
    assert raw.parse().output_text == "Hi from upstream."


async def test_usage_of_a_passed_through_response_is_read(served):
    server, _, client = served
    await client.responses.create(model="gpt-r", input="hi")
    (provider, usage), = recorded(server)
    assert provider == "oa"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
            usage.reasoning_tokens, usage.reported) == (36, 87, 12, 5, True)


async def test_stream_is_relayed_event_by_event_and_its_usage_read(served):
    server, _, client = served
    stream = await client.responses.create(model="gpt-r", input="hi", stream=True)
    events = [event async for event in stream]
    assert [e.sequence_number for e in events] == list(range(10))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == \
        "Hi there"
    (_, usage), = recorded(server)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (36, 87, 12)


async def test_a_target_that_cannot_run_a_built_in_tool_is_skipped_for_one_that_can(served):
    _, fake, client = served
    raw = await client.responses.with_raw_response.create(
        model="mixed", input="news today?", tools=[{"type": "web_search"}])
    assert raw.headers["x-onyproxy-provider"] == "oa"
    assert fake.bodies[0]["tools"] == [{"type": "web_search"}]
    response = await client.responses.create(model="mixed", input="plain")
    assert response.output_text == "echo: plain"  # the mock, first in line, when it can


def test_read_usage_understands_responses_bodies_and_stream_events():
    adapter = OpenAIAdapter.__new__(OpenAIAdapter)
    from_body, from_event, from_created = Usage(), Usage(), Usage()
    adapter.read_usage("openai-responses", response_object("m"), from_body)
    adapter.read_usage("openai-responses", stream_events("m")[-1], from_event)
    adapter.read_usage("openai-responses", stream_events("m")[0], from_created)
    assert from_body == from_event == Usage(36, 87, 12, 5, reported=True)
    assert from_created == Usage()  # response.created carries "usage": null


def test_web_and_file_search_calls_of_a_response_are_counted_for_per_use_pricing():
    adapter = OpenAIAdapter.__new__(OpenAIAdapter)
    searched = response_object("m")
    searched["output"] = [
        {"type": "web_search_call", "id": "ws_1", "status": "completed",
         "action": {"type": "search", "query": "galata tower height"}},
        {"type": "web_search_call", "id": "ws_2", "status": "completed",
         "action": {"type": "open_page", "url": "https://example.com/"}},
        {"type": "file_search_call", "id": "fs_1", "status": "completed",
         "queries": ["height"], "results": None},
        *searched["output"]]
    from_body, from_event = Usage(), Usage()
    adapter.read_usage("openai-responses", searched, from_body)
    adapter.read_usage("openai-responses", {"type": "response.completed",
                                            "response": searched}, from_event)
    assert from_body.server_tool_uses == from_event.server_tool_uses == {
        "web_search": 2, "file_search": 1}
