"""The Anthropic surface (``POST /v1/messages``) with the official anthropic SDK as the client,
in front of each kind of provider: Anthropic itself (relayed), OpenAI-compatible (translated)
and the built-in mock (translated)."""

import json

import aiohttp
import anthropic
import pytest
from fakes.anthropic_upstream import start_fake_anthropic
from fakes.control import root_url

WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}
MODELS = ["claude-test", "gpt-test", "mock-small"]
TOOL_MODELS = ["claude-test", "gpt-test"]  # the mock provider does not call tools


@pytest.fixture
async def upstreams(aiohttp_server, fake_openai):
    server, control = await start_fake_anthropic(aiohttp_server)
    return {"claude-test": control, "gpt-test": fake_openai, "url": root_url(server)}


@pytest.fixture
async def server(gateway, upstreams, fake_openai):
    return await gateway({
        "providers": {
            "claude": {"type": "anthropic", "base_url": upstreams["url"], "api_key": "sk-ant"},
            "up": {"type": "openai", "base_url": fake_openai.base_url, "api_key": "sk-up"},
            "mock": {"type": "mock"}},
        "models": {
            "claude-test": {"targets": [{"provider": "claude", "model": "claude-sonnet-4-5"}]},
            "gpt-test": {"targets": [{"provider": "up", "model": "gpt-4o-mini"}]},
            "mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]}},
    })


@pytest.fixture
async def client(server):
    sdk = anthropic.AsyncAnthropic(base_url=str(server.make_url("")), api_key="client-key",
                                   max_retries=0)
    yield sdk
    await sdk.close()


def ask(model, text="hello gateway", **extra):
    return {"model": model, "max_tokens": 100, "system": "be brief",
            "messages": [{"role": "user", "content": text}], **extra}


@pytest.mark.parametrize("model", MODELS)
async def test_plain_chat(client, model):
    message = await client.messages.create(**ask(model))
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: hello gateway"
    assert message.stop_reason == "end_turn" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
async def test_messages_stream_helper_accumulates_the_answer(client, model):
    async with client.messages.stream(**ask(model)) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == final.content[0].text == "echo: hello gateway"
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
async def test_raw_stream_has_anthropics_event_sequence(client, model):
    stream = await client.messages.create(**ask(model), stream=True)
    events = [event async for event in stream]
    names = [e.type for e in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names[1:-2] == ["content_block_start"] + ["content_block_delta"] * (
        len(names) - 5) + ["content_block_stop"]
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens > 0


async def test_translated_stream_is_sent_as_anthropic_sse_with_ping(server):
    async with aiohttp.ClientSession() as http, \
            http.post(server.make_url("/v1/messages"), json=ask("gpt-test", stream=True),
                      headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}) as resp:
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = (await resp.read()).decode()
    blocks = [b.split("\n") for b in text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in blocks]
    datas = [json.loads(lines[1].removeprefix("data: ")) for lines in blocks]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert [d["type"] for d in datas] == names


async def test_openai_provider_receives_the_system_prompt_and_limits(client, upstreams):
    await client.messages.create(**ask("gpt-test", stop_sequences=["STOP"],
                                       metadata={"user_id": "u-1"}))
    sent = upstreams["gpt-test"].last.body
    assert sent["messages"] == [{"role": "system", "content": "be brief"},
                                {"role": "user", "content": "hello gateway"}]
    assert sent["max_completion_tokens"] == 100 and sent["stop"] == ["STOP"]
    assert sent["user"] == "u-1" and sent["model"] == "gpt-4o-mini"


async def test_anthropic_provider_receives_the_request_unchanged(client, upstreams):
    request = ask("claude-test", stop_sequences=["STOP"])
    await client.messages.create(**request)
    assert upstreams["claude-test"].last.body == {**request, "model": "claude-sonnet-4-5"}


@pytest.mark.parametrize("model", TOOL_MODELS)
async def test_parallel_tool_calls_and_results(client, upstreams, model):
    request = ask(model, "weather in two cities?", tools=[WEATHER])
    first = await client.messages.create(**request)
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [u.input for u in uses] == [{"city": "Paris"}, {"city": "London"}]
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": f"{18 + i}C"}
               for i, u in enumerate(uses)]
    second = await client.messages.create(**{**request, "messages": [
        *request["messages"], {"role": "assistant", "content": first.content},
        {"role": "user", "content": results}]})
    if model == "claude-test":
        assert second.content[0].text == "echo: 18C 19C"
    else:  # the fake OpenAI model answers the last user text; check what it was sent
        sent = upstreams[model].last.body["messages"]
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "tool"]
        assert [m["tool_call_id"] for m in sent[3:]] == [u.id for u in uses]
        assert [m["content"] for m in sent[3:]] == ["18C", "19C"]


@pytest.mark.parametrize("model", TOOL_MODELS)
async def test_streamed_tool_calls(client, model):
    request = ask(model, "weather in two cities?", tools=[WEATHER],
                  tool_choice={"type": "any"})
    async with client.messages.stream(**request) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.type, b.input) for b in final.content] == [
        ("tool_use", {"city": "Paris"}), ("tool_use", {"city": "London"})]


async def test_tool_choice_reaches_openai_as_required_without_parallel_calls(client,
                                                                             upstreams):
    choice = {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    message = await client.messages.create(**ask("gpt-test", "two cities", tools=[WEATHER],
                                                 tool_choice=choice))
    sent = upstreams["gpt-test"].last.body
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    assert [b.input for b in message.content] == [{"city": "Paris"}]


async def post_raw(server, body):
    async with aiohttp.ClientSession() as http, \
            http.post(server.make_url("/v1/messages"), json=body) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize(("body", "named"), [
    ({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "gpt-test", "max_tokens": 5, "messages": []}, "messages"),
    ({"model": "gpt-test", "max_tokens": 5,
      "messages": [{"role": "system", "content": "hi"}]}, "messages.0.role"),
    ({**ask("gpt-test"), "temperature": 1.5}, "temperature"),
    ({**ask("gpt-test"), "stream": "yes"}, "stream"),
])
async def test_invalid_requests_get_anthropics_error_shape(server, body, named):
    status, error = await post_raw(server, body)
    assert status == 400
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(f"{named}:")


@pytest.mark.parametrize(("extra", "named"), [
    ({"top_k": 5}, "top_k"),
    ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking"),
])
async def test_what_the_openai_provider_cannot_honour_is_a_400_naming_it(client, upstreams,
                                                                         extra, named):
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(**ask("gpt-test"), extra_body=extra)
    assert named in caught.value.message
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert upstreams["gpt-test"].requests == []


async def test_unknown_model_is_not_found_in_anthropic_shape(client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.messages.create(**ask("nope"))
    assert caught.value.body["error"]["type"] == "not_found_error"
