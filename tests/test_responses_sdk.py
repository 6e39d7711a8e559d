"""``POST /v1/responses`` with the official ``openai`` SDK, served by non-Responses providers.

The mock provider and a Chat-only OpenAI-compatible upstream (the fake OpenAI upstream behind
an adapter that speaks only Chat Completions) are reached through the hub translation. Every
answer and event is checked against the SDK's generated models of OpenAI's spec, strictly.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pydantic
import pytest
from fakes.openai_upstream import Behaviour, start_fake_openai
from openai import APIError, AsyncOpenAI, BadRequestError
from openai.types.responses import Response, ResponseStreamEvent

from onyproxy.appkeys import GATEWAY
from onyproxy.providers.openai import OpenAIAdapter

EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}, "strict": True}


class ChatOnlyAdapter(OpenAIAdapter):
    """An OpenAI-compatible server without the Responses API (many self-hosted ones)."""

    shapes = ("openai",)


@pytest.fixture
async def mock_client(gateway):
    server = await gateway()
    client = AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="k", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def chat_only(gateway, aiohttp_server):
    """(client, fake): model ``gpt-c`` served by a Chat-only upstream."""
    _, fake = await start_fake_openai(aiohttp_server)
    server = await gateway({
        "providers": {"chat": {"type": "openai", "base_url": fake.base_url, "api_key": "sk"}},
        "models": {"gpt-c": {"targets": [{"provider": "chat", "model": "gpt-4o-mini"}]}},
    })
    gw = server.app[GATEWAY]
    gw.adapters["chat"] = ChatOnlyAdapter("chat", gw.adapters["chat"].config, gw.session)
    client = AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="k", max_retries=0)
    yield client, fake
    await client.close()


async def create(client: AsyncOpenAI, **params: Any) -> Response:
    """One non-streamed call; the wire body must validate strictly against the spec's model."""
    raw = await client.responses.with_raw_response.create(**params)
    body = raw.http_response.json()
    Response.model_validate(body, strict=False)
    assert body["id"].startswith("resp_") and body["object"] == "response"
    return raw.parse()


async def stream_events(client: AsyncOpenAI, **params: Any) -> list[Any]:
    stream = await client.responses.create(stream=True, **params)
    events = [event async for event in stream]
    for event in events:
        EVENTS.validate_python(event.model_dump(exclude_unset=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    return events


# --- mock provider ------------------------------------------------------------------------


async def test_plain_text_answer_from_the_mock(mock_client):
    response = await create(mock_client, model="mock-small", input="hello there",
                            instructions="Be brief.")
    assert response.output_text == "echo: hello there"
    assert response.status == "completed" and response.model == "mock-small"
    (message,) = response.output
    assert message.type == "message" and message.content[0].annotations == []
    usage = response.usage
    # The mock counts words and punctuation: "Be brief." + "hello there"; "echo: hello there".
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (5, 4, 9)
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0


async def test_input_items_reach_the_provider_as_a_conversation(mock_client):
    response = await create(mock_client, model="mock-small", input=[
        {"role": "user", "content": "first"},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "echo: first", "annotations": []}]},
        {"role": "user", "content": [{"type": "input_text", "text": "second one"}]}])
    assert response.output_text == "echo: second one"


async def test_streamed_answer_has_the_responses_event_sequence(mock_client):
    events = await stream_events(mock_client, model="mock-small", input="hi you")
    assert [e.type for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert events[7].text == "echo: hi you"
    final = events[-1].response
    assert final.output_text == "echo: hi you" and final.usage.output_tokens == 4


async def test_stream_events_are_named_and_never_end_with_done(gateway):
    server = await gateway()
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.make_url("/v1/responses"),
                               json={"model": "mock-small", "input": "hi", "stream": True})
        text = await resp.text()
    blocks = [b for b in text.split("\n\n") if b]
    for block in blocks:
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        EVENTS.validate_python(event)  # the wire data itself, against the spec's models
        assert name == f"event: {event['type']}"
    assert "[DONE]" not in text


async def test_the_sdk_stream_helper_accumulates_the_answer(mock_client):
    async with mock_client.responses.stream(model="mock-small", input="stream me") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "echo: stream me"


async def test_built_in_tools_are_refused_naming_them(mock_client):
    with pytest.raises(BadRequestError) as caught:
        await mock_client.responses.create(model="mock-small", input="hi",
                                           tools=[{"type": "web_search"}, WEATHER])
    error = caught.value.body
    assert error["param"] == "tools" and "web_search" in error["message"]


@pytest.mark.parametrize("params, param", [
    ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({}, "input"),
    ({"input": []}, "input"),
    ({"input": "hi", "temperature": 3}, "temperature"),
    ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
])
async def test_bad_or_unservable_requests_are_400_naming_the_parameter(mock_client, params,
                                                                     param):
    with pytest.raises(BadRequestError) as caught:
        await mock_client.responses.create(model="mock-small", **params)
    assert caught.value.body["param"] == param


# --- a Chat-only upstream, to see what the translation sends ------------------------------


async def test_request_translation_as_the_chat_upstream_receives_it(chat_only):
    client, fake = chat_only
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    await create(client, model="gpt-c", instructions="Be brief.", input="hello",
                 max_output_tokens=50, temperature=0.5, store=False,
                 text={"format": {"type": "json_schema", "name": "out", "schema": schema}})
    assert fake.last.body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "hello"}],
        "max_completion_tokens": 50, "temperature": 0.5,
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "out", "schema": schema}}}


async def test_function_call_round_trip(chat_only):
    client, fake = chat_only
    first = await create(client, model="gpt-c", input="weather in Paris?", tools=[WEATHER])
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert fake.last.body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city",
        "parameters": WEATHER["parameters"], "strict": True}}]
    second = await create(client, model="gpt-c", tools=[WEATHER], input=[
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "22C sunny"}])
    assert fake.last.body["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.call_id, "type": "function",
             "function": {"name": "get_weather", "arguments": call.arguments}}]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "22C sunny"}]
    assert second.status == "completed"


async def test_parallel_function_calls_stream_as_separate_items(chat_only):
    client, _ = chat_only
    events = await stream_events(client, model="gpt-c", tools=[WEATHER],
                                 input="weather in two cities?")
    added = [e.item for e in events if e.type == "response.output_item.added"]
    assert [i.type for i in added] == ["function_call", "function_call"]
    done = {e.item_id: e.arguments for e in events
            if e.type == "response.function_call_arguments.done"}
    deltas: dict[str, str] = {}
    for e in events:
        if e.type == "response.function_call_arguments.delta":
            deltas[e.item_id] = deltas.get(e.item_id, "") + e.delta
    assert deltas == done
    assert sorted(json.loads(a)["city"] for a in done.values()) == ["London", "Paris"]
    final = events[-1].response
    assert [o.call_id for o in final.output] == [i.call_id for i in added]


async def test_tool_choice_naming_a_function_is_translated(chat_only):
    client, fake = chat_only
    await create(client, model="gpt-c", input="hi", tools=[WEATHER],
                 tool_choice={"type": "function", "name": "get_weather"})
    assert fake.last.body["tool_choice"] == {"type": "function",
                                             "function": {"name": "get_weather"}}


async def test_an_answer_cut_by_max_output_tokens_is_incomplete(chat_only):
    client, _ = chat_only
    response = await create(client, model="gpt-c", input="one two three four",
                            max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    events = await stream_events(client, model="gpt-c", input="one two three four",
                                 max_output_tokens=2)
    assert events[-1].type == "response.incomplete"


async def test_a_stream_that_breaks_mid_way_ends_in_an_error_for_the_client(chat_only):
    client, fake = chat_only
    fake.script(Behaviour.drop_stream(after_events=3))
    stream = await client.responses.create(model="gpt-c", input="one two three four five",
                                           stream=True)
    seen = []
    with pytest.raises(APIError) as caught:
        async for event in stream:
            seen.append(event.type)
    assert "response.output_text.delta" in seen and "response.completed" not in seen
    assert "'chat'" in caught.value.message
    assert len(fake.requests) == 1
