"""The fake OpenAI upstream speaks OpenAI's wire format: chat, tools, embeddings, models.

Everything here goes through the official ``openai`` SDK over loopback HTTP, and every
object on the wire is checked against the schemas of OpenAI's published OpenAPI spec.
Its failures on demand are in ``test_fake_openai_faults``.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import jsonschema
import pytest
from fakes.openai_schema import KINDS, SCHEMA_FILE, load_schemas, validate_openai
from fakes.openai_sdk import chat, client, fake, stream, user
from fakes.openai_upstream import FakeOpenAI
from openai import AsyncOpenAI

__all__ = ["client", "fake"]  # fixtures

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def tool_calls_from(chunks: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Assemble streamed tool calls by their index, as a client has to."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for part in choice["delta"].get("tool_calls") or []:
                call = calls.setdefault(part["index"], {"arguments": "", "deltas": 0})
                call.update({k: part[k] for k in ("id", "type") if k in part})
                call.setdefault("name", part.get("function", {}).get("name"))
                call["arguments"] += part.get("function", {}).get("arguments", "")
                call["deltas"] += 1
    return calls


# --- the schemas themselves ----------------------------------------------------------------


def test_schema_extract_holds_exactly_what_the_five_roots_reference() -> None:
    raw = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    schemas = raw["components"]["schemas"]
    reached: set[str] = set()
    todo = list(KINDS.values())
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            text = json.dumps(schemas[name])
            todo += [p.split('"')[0] for p in text.split('"#/components/schemas/')[1:]]
    assert reached == set(schemas)


def test_nullable_becomes_json_schema_null() -> None:
    choices = load_schemas()["CreateChatCompletionStreamResponse"]["properties"]["choices"]
    reason = choices["items"]["properties"]["finish_reason"]
    assert reason["type"] == ["string", "null"]
    assert None in reason["enum"]


def test_validator_rejects_what_the_spec_forbids() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_openai("chat.completion", {"id": "x", "object": "chat.completion"})
    with pytest.raises(jsonschema.ValidationError):
        validate_openai("error", {"error": {"message": "m", "type": "t", "param": None}})
    with pytest.raises(KeyError):
        validate_openai("no.such.kind", {})


# --- chat ------------------------------------------------------------------------------------


async def test_chat_echoes_the_last_user_text_with_usage(client: AsyncOpenAI) -> None:
    body = await chat(client, "hello there")
    (choice,) = body["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "echo: hello there",
        "refusal": None,
        "annotations": [],
    }
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
    assert body["id"].startswith("chatcmpl-") and body["system_fingerprint"].startswith("fp_")
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (4, 3, 7)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


async def test_chat_max_tokens_cuts_the_answer(client: AsyncOpenAI) -> None:
    body = await chat(client, "one two three four", max_completion_tokens=2)
    assert body["choices"][0]["message"]["content"] == "echo: one"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


async def test_stream_sends_role_then_one_word_per_chunk(client: AsyncOpenAI) -> None:
    chunks = await stream(client, "hello there")
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}
    assert [d.get("content") for d in deltas[1:-1]] == ["echo:", " hello", " there"]
    assert deltas[-1] == {} and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


async def test_stream_with_include_usage_adds_a_usage_chunk(client: AsyncOpenAI) -> None:
    chunks = await stream(client, "hello there", stream_options={"include_usage": True})
    *answer, last = chunks
    assert all(c["usage"] is None for c in answer)
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == 4 and last["usage"]["completion_tokens"] == 3
    assert answer[-1]["choices"][0]["finish_reason"] == "stop"


async def test_stream_is_sse_ending_with_done(fake: FakeOpenAI) -> None:
    request = {"model": "m", "messages": user("hi"), "stream": True}
    options = {"include_obfuscation": False}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url}/chat/completions", json=request) as plain,
        session.post(
            f"{fake.base_url}/chat/completions", json={**request, "stream_options": options}
        ) as bare,
    ):
        assert plain.headers["Content-Type"].startswith("text/event-stream")
        events = (await plain.text()).split("\n\n")
        bare_events = (await bare.text()).split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: {") for e in events[:-2])
    for event in events[:-2]:
        validate_openai("chat.completion.chunk", json.loads(event.removeprefix("data: ")))
    assert all("obfuscation" in json.loads(e[6:]) for e in events[:-2])
    assert all("obfuscation" not in json.loads(e[6:]) for e in bare_events[:-2])


# --- tools -----------------------------------------------------------------------------------


async def test_weather_question_gets_a_tool_call(client: AsyncOpenAI) -> None:
    body = await chat(client, "What is the weather in Paris?", tools=[WEATHER_TOOL])
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None and message["refusal"] is None
    (call,) = message["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}


async def test_two_cities_get_two_parallel_calls(client: AsyncOpenAI) -> None:
    text = "weather in two cities please"
    body = await chat(client, text, tools=[WEATHER_TOOL])
    calls = body["choices"][0]["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris"},
        {"city": "London"},
    ]
    single = await chat(client, text, tools=[WEATHER_TOOL], parallel_tool_calls=False)
    assert len(single["choices"][0]["message"]["tool_calls"]) == 1


async def test_tool_choice_forces_the_named_function(client: AsyncOpenAI) -> None:
    other = {"type": "function", "function": {"name": "lookup", "parameters": {}}}
    forced = {"type": "function", "function": {"name": "lookup"}}
    body = await chat(client, "hi", tools=[WEATHER_TOOL, other], tool_choice=forced)
    (call,) = body["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "lookup", "arguments": '{"location":"Paris"}'}
    plain = await chat(client, "weather?", tools=[WEATHER_TOOL], tool_choice="none")
    assert plain["choices"][0]["message"]["content"] == "echo: weather?"


async def test_streamed_tool_calls_arrive_in_indexed_pieces(client: AsyncOpenAI) -> None:
    chunks = await stream(client, "weather in two cities", tools=[WEATHER_TOOL])
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None
    calls = tool_calls_from(chunks)
    assert sorted(calls) == [0, 1]
    for index, city in enumerate(["Paris", "London"]):
        call = calls[index]
        assert call["id"].startswith("call_") and call["name"] == "get_weather"
        assert json.loads(call["arguments"]) == {"city": city}
        assert call["deltas"] > 2  # the opening delta, then several argument pieces
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


# --- embeddings and models -------------------------------------------------------------------


async def test_embeddings_float_and_base64_agree(client: AsyncOpenAI, fake: FakeOpenAI) -> None:
    texts = ["first text", "second"]
    raw_float = await client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=texts, encoding_format="float"
    )
    raw_b64 = await client.embeddings.with_raw_response.create(
        model="text-embedding-3-small",
        input=texts,  # the SDK asks for base64 by default
    )
    float_wire, b64_wire = raw_float.http_response.json(), raw_b64.http_response.json()
    validate_openai("embedding.list", float_wire)
    validate_openai("embedding.list", b64_wire)
    assert fake.last.body["encoding_format"] == "base64"
    assert isinstance(b64_wire["data"][0]["embedding"], str)
    decoded = raw_b64.parse()
    assert [d.embedding for d in decoded.data] == [d["embedding"] for d in float_wire["data"]]
    assert [d["index"] for d in float_wire["data"]] == [0, 1]
    assert float_wire["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert float_wire["model"] == "text-embedding-3-small"


async def test_embeddings_take_a_string_and_honour_dimensions(client: AsyncOpenAI) -> None:
    result = await client.embeddings.create(model="e", input="one", dimensions=5)
    (item,) = result.data
    assert len(item.embedding) == 5
    assert abs(sum(v * v for v in item.embedding) - 1.0) < 1e-5


async def test_models_are_listed(client: AsyncOpenAI, fake: FakeOpenAI) -> None:
    raw = await client.models.with_raw_response.list()
    validate_openai("model.list", raw.http_response.json())
    page = raw.parse()
    assert [m.id async for m in page] == fake.models
