"""OpenAI clients reaching a model served by Anthropic: the official openai SDK in front of the
gateway, the fake Anthropic upstream behind it, assertions on what reached Anthropic."""

import json

import aiohttp
import openai
import pytest
from fakes.anthropic_upstream import start_fake_anthropic
from fakes.control import Fault, root_url
from fakes.openai_schema import validate_openai

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
ASK = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello gateway"}]


@pytest.fixture
async def claude(aiohttp_server):
    """The fake Anthropic upstream: (root URL, controller)."""
    server, control = await start_fake_anthropic(aiohttp_server)
    return root_url(server), control


def anthropic_config(url: str, retries: int = 0) -> dict:
    return {
        "providers": {"claude": {"type": "anthropic", "base_url": url, "api_key": "sk-ant-up"}},
        "models": {"claude-test": {"targets": [{"provider": "claude",
                                                "model": "claude-sonnet-4-5"}]}},
        "pipeline": [{"name": "routing", "retries": retries, "timeout_s": 5,
                      "backoff_s": 0.01}],
    }


@pytest.fixture
async def client(gateway, claude):
    server = await gateway(anthropic_config(claude[0]))
    sdk = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="client-key",
                             max_retries=0)
    yield sdk
    await sdk.close()


async def test_chat_reaches_anthropic_as_a_messages_call(client, claude):
    raw = await client.chat.completions.with_raw_response.create(
        model="claude-test", messages=ASK, temperature=0.3)
    validate_openai("chat.completion", raw.http_response.json())
    answer = raw.parse()
    assert answer.choices[0].message.content == "echo: hello gateway"
    assert answer.choices[0].finish_reason == "stop" and answer.model == "claude-test"
    assert answer.usage.prompt_tokens == 4 and answer.usage.completion_tokens == 3
    assert raw.headers["x-onyproxy-provider"] == "claude"
    sent = claude[1].last
    assert sent.path == "/v1/messages"
    assert sent.body == {"model": "claude-sonnet-4-5", "system": "be brief",
                         "messages": [{"role": "user", "content": "hello gateway"}],
                         "max_tokens": 4096, "temperature": 0.3}
    assert sent.headers["x-api-key"] == "sk-ant-up"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers  # the client's own key stays at the gateway


async def test_stream_is_translated_chunk_by_chunk(client, claude):
    stream = await client.chat.completions.create(model="claude-test", messages=ASK,
                                                  stream=True, max_tokens=50)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hello gateway"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices for c in chunks), "no usage chunk for a client that did not ask"
    assert claude[1].last.body["stream"] is True and claude[1].last.body["max_tokens"] == 50


async def test_raw_stream_chunks_follow_openais_schema_and_end_with_done(gateway, claude):
    server = await gateway(anthropic_config(claude[0]))
    body = {"model": "claude-test", "messages": ASK, "stream": True,
            "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as http, \
            http.post(server.make_url("/v1/chat/completions"), json=body) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = (await resp.read()).decode()
    datas = [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    for chunk in chunks:
        validate_openai("chat.completion.chunk", chunk)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 3,
                                   "total_tokens": 7,
                                   "prompt_tokens_details": {"cached_tokens": 0}}


async def test_parallel_tool_calls_and_results_round_trip(client, claude):
    ask = [{"role": "user", "content": "weather in two cities?"}]
    first = await client.chat.completions.create(model="claude-test", messages=ask,
                                                 tools=[WEATHER])
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"},
                                                                  {"city": "London"}]
    assert claude[1].last.body["tools"] == [{
        "name": "get_weather", "description": "Current weather in a city",
        "input_schema": WEATHER["function"]["parameters"]}]
    results = [{"role": "tool", "tool_call_id": c.id, "content": f"{i + 18}C"}
               for i, c in enumerate(calls)]
    second = await client.chat.completions.create(
        model="claude-test", tools=[WEATHER],
        messages=[*ask, first.choices[0].message.model_dump(exclude_none=True), *results])
    assert second.choices[0].message.content == "echo: 18C 19C"
    turns = claude[1].last.body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["type"] for b in turns[2]["content"]] == ["tool_result", "tool_result"]
    assert [b["tool_use_id"] for b in turns[2]["content"]] == [c.id for c in calls]


async def test_streamed_tool_calls_arrive_as_openai_deltas(client, claude):
    stream = await client.chat.completions.create(
        model="claude-test", tools=[WEATHER], tool_choice="required", stream=True,
        messages=[{"role": "user", "content": "two cities please"}])
    chunks = [chunk async for chunk in stream]
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": delta.id, "arguments": ""})
            call["arguments"] += delta.function.arguments or ""
    assert [json.loads(c["arguments"]) for c in calls.values()] == [{"city": "Paris"},
                                                                     {"city": "London"}]
    assert all(c["id"].startswith("toolu_") for c in calls.values())
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert claude[1].last.body["tool_choice"] == {"type": "any"}


async def test_json_schema_becomes_anthropic_structured_output(client, claude):
    schema = {"type": "object", "properties": {"summary": {"type": "string"}},
              "required": ["summary"], "additionalProperties": False}
    answer = await client.chat.completions.create(
        model="claude-test", messages=ASK,
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    assert json.loads(answer.choices[0].message.content) == {"summary": "echo: hello gateway"}
    assert claude[1].last.body["output_config"] == {"format": {"type": "json_schema",
                                                               "schema": schema}}


@pytest.mark.parametrize(("extra", "param"), [
    ({"temperature": 1.5}, "temperature"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
])
async def test_what_anthropic_cannot_honour_is_refused_before_the_call(client, claude, extra,
                                                                         param):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="claude-test", messages=ASK, **extra)
    error = caught.value.body
    validate_openai("error", {"error": error})
    assert error["param"] == param and param in error["message"]
    assert claude[1].requests == []


async def test_anthropic_refusal_of_the_request_passes_through_in_openai_shape(client, claude):
    claude[1].fail(400, "messages.0.content: too long")
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="claude-test", messages=ASK)
    assert caught.value.body["message"] == "messages.0.content: too long"
    assert caught.value.body["type"] == "invalid_request_error"


async def test_overloaded_529_is_retried(gateway, claude):
    server = await gateway(anthropic_config(claude[0], retries=1))
    claude[1].fail(529)
    async with openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="k",
                                  max_retries=0) as sdk:
        answer = await sdk.chat.completions.create(model="claude-test", messages=ASK)
    assert answer.choices[0].message.content == "echo: hello gateway"
    assert len(claude[1].requests) == 2


async def test_overloaded_error_inside_a_stream_reaches_the_client_as_an_error(client, claude):
    claude[1].script(Fault(error_after_events=4, status=529))
    stream = await client.chat.completions.create(model="claude-test", messages=ASK,
                                                  stream=True)
    with pytest.raises(openai.APIError, match="overloaded_error"):
        async for _ in stream:
            pass


async def test_images_and_consecutive_user_turns_reach_anthropic_as_one_turn(client, claude):
    pixel = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gA"
             "AAABJRU5ErkJggg==")
    await client.chat.completions.create(model="claude-test", messages=[
        {"role": "user", "content": [
            {"type": "text", "text": "compare"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}}]},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/b.webp"}}]}])
    assert claude[1].last.body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": pixel}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/b.webp"}}]}]


@pytest.mark.parametrize(("extra", "finish", "content"), [
    ({"max_tokens": 2}, "length", "echo: one"),
    ({"stop": ["three"]}, "stop", "echo: one two "),
])
async def test_limits_and_stop_sequences_give_openai_finish_reasons(client, claude, extra,
                                                                    finish, content):
    answer = await client.chat.completions.create(
        model="claude-test", messages=[{"role": "user", "content": "one two three"}], **extra)
    assert answer.choices[0].finish_reason == finish
    assert answer.choices[0].message.content == content
