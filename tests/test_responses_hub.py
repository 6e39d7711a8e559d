"""``POST /v1/responses`` with the official ``openai`` SDK, served by Anthropic and Gemini.

The Responses request goes through the hub (Responses → Chat → the provider's own API) and the
answer back; the fake upstreams record what reached them, so the tests assert on that too.
"""

from __future__ import annotations

import json

import pytest
from fakes.anthropic_upstream import start_fake_anthropic
from fakes.control import root_url
from fakes.gemini_upstream import start_fake_gemini
from openai import AsyncOpenAI

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}, "strict": True}


@pytest.fixture
async def hub(gateway, aiohttp_server):
    """(client, {"claude": anthropic fake, "gem": gemini fake})."""
    anthropic_server, anthropic = await start_fake_anthropic(aiohttp_server)
    gemini_server, gemini = await start_fake_gemini(aiohttp_server)
    server = await gateway({
        "providers": {
            "an": {"type": "anthropic", "base_url": root_url(anthropic_server), "api_key": "k"},
            "ge": {"type": "gemini", "base_url": root_url(gemini_server), "api_key": "k"}},
        "models": {"claude": {"targets": [{"provider": "an", "model": "claude-sonnet-4-5"}]},
                   "gem": {"targets": [{"provider": "ge", "model": "gemini-2.5-flash"}]}},
    })
    client = AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="k", max_retries=0)
    yield client, {"claude": anthropic, "gem": gemini}
    await client.close()


async def test_instructions_reach_anthropic_as_its_system_prompt(hub):
    client, fakes = hub
    response = await client.responses.create(model="claude", input="hello there",
                                             instructions="Be brief.", max_output_tokens=100)
    assert response.output_text == "echo: hello there" and response.model == "claude"
    body = fakes["claude"].last.body
    assert body["system"] == "Be brief." and body["max_tokens"] == 100
    assert body["messages"] == [{"role": "user", "content": "hello there"}]
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


async def test_instructions_reach_gemini_as_its_system_instruction(hub):
    client, fakes = hub
    response = await client.responses.create(model="gem", input="hello there",
                                             instructions="Be brief.")
    assert response.output_text == "echo: hello there"
    body = fakes["gem"].last.body
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


@pytest.mark.parametrize("model", ["claude", "gem"])
async def test_function_calls_come_back_as_function_call_items(hub, model):
    client, _ = hub
    response = await client.responses.create(model=model, input="weather in Paris?",
                                             tools=[WEATHER])
    (call,) = response.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}


@pytest.mark.parametrize("model", ["claude", "gem"])
async def test_streams_arrive_as_responses_events(hub, model):
    client, _ = hub
    async with client.responses.stream(model=model, input="hello stream") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "echo: hello stream"
    assert final.status == "completed" and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["claude", "gem"])
async def test_streamed_function_call_arguments(hub, model):
    client, _ = hub
    stream = await client.responses.create(model=model, input="weather in Paris?",
                                           tools=[WEATHER], stream=True)
    events = [event async for event in stream]
    deltas = "".join(e.delta for e in events
                     if e.type == "response.function_call_arguments.delta")
    (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert json.loads(deltas) == json.loads(done.arguments) == {"city": "Paris"}
    assert events[-1].type == "response.completed"
