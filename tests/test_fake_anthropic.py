"""The fake Anthropic upstream speaks the real wire format: the official SDK drives it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import anthropic
import httpx2
import pytest
from fakes.anthropic_upstream import start_fake_anthropic
from fakes.control import Fault, UpstreamController, root_url

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
PIXEL = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def fake(aiohttp_server) -> tuple[str, UpstreamController]:
    server, control = await start_fake_anthropic(aiohttp_server)
    return root_url(server), control


@pytest.fixture
async def client(fake) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(base_url=fake[0], api_key="sk-ant-test", max_retries=0)
    yield sdk
    await sdk.close()


def ask(text: str, **extra) -> dict:
    return {
        "model": "claude-test",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


async def test_create_answers_echo_text_with_usage(client, fake):
    message = await client.messages.create(**ask("hello there", system="be brief"))
    assert message.id.startswith("msg_")
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "echo: hello there"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.model == "claude-test"
    assert message.usage.input_tokens == 4 and message.usage.output_tokens == 3
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0


async def test_records_what_reached_the_provider(client, fake):
    # SDK 2.x has no temperature argument any more; older clients still send one.
    await client.messages.create(**ask("hi"), extra_body={"temperature": 0.5})
    seen = fake[1].last
    assert (seen.method, seen.path) == ("POST", "/v1/messages")
    assert seen.body["temperature"] == 0.5 and seen.body["max_tokens"] == 64
    # anthropic SDK 2.x sends api_key as a bearer token, and a dated version header.
    assert seen.headers["authorization"] == "Bearer sk-ant-test"
    assert seen.headers["anthropic-version"]


async def post(root: str, body: dict, headers: dict) -> tuple[int, str, str]:
    """A raw call without the SDK: (status, content type, body text)."""
    url = f"{root}/v1/messages"
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as resp:
        return resp.status, resp.headers["content-type"], await resp.text()


async def test_x_api_key_header_is_accepted(fake):
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    status, _, text = await post(fake[0], ask("hi"), headers)
    assert status == 200 and json.loads(text)["content"][0]["text"] == "echo: hi"


@pytest.mark.parametrize(
    ("headers", "status", "kind"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": "k"}, 400, "invalid_request_error"),
    ],
)
async def test_missing_key_or_version_is_refused_in_anthropic_shape(fake, headers, status, kind):
    answered, _, text = await post(fake[0], ask("hi"), headers)
    body = json.loads(text)
    assert answered == status
    assert body["type"] == "error" and body["error"]["type"] == kind
    assert body["error"]["message"] and body["request_id"].startswith("req_")


async def test_unknown_key_is_refused_when_keys_are_configured(client, fake):
    fake[1].api_keys = {"sk-ant-other"}
    with pytest.raises(anthropic.AuthenticationError):
        await client.messages.create(**ask("hi"))


async def test_max_tokens_truncates_with_max_tokens_stop_reason(client):
    message = await client.messages.create(**{**ask("one two three"), "max_tokens": 2})
    assert message.content[0].text == "echo: one"
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 2


async def test_stop_sequence_cuts_and_is_reported(client):
    message = await client.messages.create(**ask("alpha STOP beta", stop_sequences=["STOP"]))
    assert message.content[0].text == "echo: alpha "
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "STOP"


async def test_invalid_requests_are_400_invalid_request_error(client):
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        await client.messages.create(**ask("hi"), extra_body={"temperature": 1.5})
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`"):
        await client.messages.create(
            **ask(
                "x",
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_nope", "content": "18C"}
                        ],
                    }
                ],
            )
        )


async def test_raw_stream_has_the_exact_event_sequence(fake):
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    status, content_type, raw = await post(fake[0], ask("hi you", stream=True), headers)
    assert status == 200 and content_type.startswith("text/event-stream")
    frames = [f for f in raw.split("\n\n") if f]
    names = [f.splitlines()[0].removeprefix("event: ") for f in frames]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(f.splitlines()[1].startswith("data: {") for f in frames)
    assert '"usage": {"input_tokens": 2' in frames[-2] and '"output_tokens": 3' in frames[-2]


async def test_sdk_stream_text_and_final_message(client):
    async with client.messages.stream(**ask("stream me please")) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert pieces == ["echo:", " stream", " me", " please"]
    assert final.content[0].text == "echo: stream me please"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 4


async def test_sdk_stream_tool_use_arrives_as_partial_json(client):
    request = ask("what is the weather in Paris?", tools=[WEATHER_TOOL])
    async with client.messages.stream(**request) as stream:
        partial = [e.partial_json async for e in stream if e.type == "input_json"]
        final = await stream.get_final_message()
    assert len(partial) >= 3
    assert final.stop_reason == "tool_use"
    [call] = final.content
    assert call.type == "tool_use" and call.id.startswith("toolu_")
    assert call.name == "get_weather" and call.input == {"city": "Paris", "days": 1}


async def test_two_cities_give_parallel_tool_use_blocks(client):
    message = await client.messages.create(**ask("weather in two cities", tools=[WEATHER_TOOL]))
    assert message.stop_reason == "tool_use"
    assert [b.input["city"] for b in message.content] == ["Paris", "London"]
    assert len({b.id for b in message.content}) == 2


async def test_tool_choice_forces_a_tool_and_none_disables_it(client):
    forced = await client.messages.create(
        **ask("hello", tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "get_weather"})
    )
    assert forced.content[0].type == "tool_use"
    plain = await client.messages.create(
        **ask("weather?", tools=[WEATHER_TOOL], tool_choice={"type": "none"})
    )
    assert plain.content[0].type == "text"


async def test_tool_result_turn_gets_a_text_answer(client):
    first = await client.messages.create(**ask("weather in Paris?", tools=[WEATHER_TOOL]))
    call = first.content[0]
    follow_up = [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [call.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C sunny"}],
        },
    ]
    answer = await client.messages.create(**ask("", messages=follow_up, tools=[WEATHER_TOOL]))
    assert answer.content[0].text == "echo: 18C sunny" and answer.stop_reason == "end_turn"


async def test_images_and_system_blocks_are_accepted(client, fake):
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "describe"},
    ]
    request = ask(
        "",
        messages=[{"role": "user", "content": content}],
        system=[{"type": "text", "text": "sys"}],
    )
    message = await client.messages.create(**request)
    assert message.content[0].text == "echo: describe"
    assert fake[1].last.body["messages"][0]["content"][0]["source"]["data"] == PIXEL


async def test_prompt_cache_is_written_once_then_read(client):
    system = [
        {
            "type": "text",
            "text": "long shared instructions here",
            "cache_control": {"type": "ephemeral"},
        }
    ]
    first = await client.messages.create(**ask("q1", system=system))
    second = await client.messages.create(**ask("q2", system=system))
    assert first.usage.cache_creation_input_tokens == 4 and first.usage.cache_read_input_tokens == 0
    assert (
        second.usage.cache_read_input_tokens == 4 and second.usage.cache_creation_input_tokens == 0
    )
    assert second.usage.input_tokens == 1


async def test_count_tokens(client):
    counted = await client.messages.count_tokens(
        model="claude-test", messages=[{"role": "user", "content": "a b c"}]
    )
    assert counted.input_tokens == 3


# -- scripted faults ----------------------------------------------------------------


async def test_overloaded_529_in_anthropic_shape(client, fake):
    fake[1].fail(529)
    with pytest.raises(anthropic.InternalServerError) as caught:
        await client.messages.create(**ask("hi"))
    assert caught.value.status_code == 529
    assert caught.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert (await client.messages.create(**ask("hi"))).content[0].text == "echo: hi"


async def test_sdk_retries_a_scripted_500_then_succeeds(fake):
    fake[1].script(Fault(status=500, headers={"retry-after-ms": "10"}))
    sdk = anthropic.AsyncAnthropic(base_url=fake[0], api_key="k", max_retries=1)
    try:
        message = await sdk.messages.create(**ask("again"))
    finally:
        await sdk.close()
    assert message.content[0].text == "echo: again"
    assert len(fake[1].requests) == 2


async def test_429_carries_retry_after(client, fake):
    fake[1].fail(429, retry_after=3)
    with pytest.raises(anthropic.RateLimitError) as caught:
        await client.messages.create(**ask("hi"))
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.body["error"]["type"] == "rate_limit_error"


async def test_400_with_a_scripted_message(client, fake):
    fake[1].fail(400, "prompt is too long: 250000 tokens > 200000 maximum")
    with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        await client.messages.create(**ask("hi"))


async def test_slow_answer_times_out_the_client_and_sees_it_leave(client, fake):
    fake[1].slow(2)
    with pytest.raises(anthropic.APITimeoutError):
        await client.with_options(timeout=0.1).messages.create(**ask("hi"))
    async with asyncio.timeout(1):
        while fake[1].disconnects == 0:
            await asyncio.sleep(0.01)
    assert fake[1].in_flight == 0


async def test_dropped_stream_breaks_the_client_read(client, fake):
    fake[1].drop_stream(after_events=4)
    seen = []
    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        async with client.messages.stream(**ask("one two three four")) as stream:
            async for event in stream:
                seen.append(event.type)
    # Four wire events reached the client (the ping is not surfaced by the SDK).
    assert seen == ["message_start", "content_block_start", "content_block_delta", "text"]


async def test_in_stream_error_event_raises_in_the_sdk(client, fake):
    fake[1].error_in_stream(after_events=3)
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(**ask("one two")) as stream:
            async for _ in stream:
                pass
    assert caught.value.body["error"]["type"] == "overloaded_error"


async def test_delay_between_events(client, fake):
    fake[1].always = Fault(event_delay_s=0.03)
    started = time.monotonic()
    async with client.messages.stream(**ask("a b")) as stream:
        await stream.get_final_message()
    assert time.monotonic() - started >= 8 * 0.03  # nine events, delayed before each


async def test_counts_requests_in_flight(client, fake):
    fake[1].always = Fault(delay_s=0.5)
    calls = asyncio.gather(*(client.messages.create(**ask(str(i))) for i in range(3)))
    await fake[1].wait_for_requests(3)
    assert fake[1].in_flight == 3
    await calls
    assert fake[1].max_in_flight == 3 and fake[1].in_flight == 0


async def test_client_leaving_mid_stream_is_counted(client, fake):
    fake[1].always = Fault(event_delay_s=0.05)
    async with client.messages.stream(**ask("a b c d e f")) as stream:
        async for event in stream:
            if event.type == "content_block_delta":
                break
    async with asyncio.timeout(2):
        while fake[1].disconnects == 0:
            await asyncio.sleep(0.01)
    assert fake[1].in_flight == 0


async def test_fault_matching_a_path_skips_other_requests(client, fake):
    fake[1].fail(500, match="count_tokens")
    assert (await client.messages.create(**ask("hi"))).content[0].text == "echo: hi"
    with pytest.raises(anthropic.InternalServerError):
        await client.messages.count_tokens(model="m", messages=[{"role": "user", "content": "x"}])


async def test_extended_thinking_streams_thinking_then_signature(client):
    request = ask("hmm", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})
    async with client.messages.stream(**request) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert "thinking" in kinds and "signature" in kinds
    thinking, text = final.content
    assert thinking.type == "thinking" and thinking.thinking == "Thinking about: hmm"
    assert thinking.signature.startswith("Sig") and text.text == "echo: hmm"
    with pytest.raises(anthropic.BadRequestError, match="budget_tokens"):
        await client.messages.create(
            **{**request, "thinking": {"type": "enabled", "budget_tokens": 10}}
        )


async def test_structured_output_is_json_fitting_the_schema(client):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    output_config = {"format": {"type": "json_schema", "schema": schema}}
    message = await client.messages.create(**ask("q"), output_config=output_config)
    assert json.loads(message.content[0].text) == {"answer": "echo: q"}
