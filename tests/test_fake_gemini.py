"""The fake Gemini upstream speaks the real wire format: google-genai drives it."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from fakes.control import Fault, UpstreamController, root_url
from fakes.gemini_upstream import start_fake_gemini
from google import genai
from google.genai import errors, types

# google-genai's async client subclasses aiohttp.ClientSession inside the SDK, and
# aiohttp warns about that on every first request; nothing in our code can avoid it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession is discouraged"
    ":DeprecationWarning"
)

MODEL = "gemini-2.5-flash"
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Current weather in a city",
            parameters={"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
        )
    ]
)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def fake(aiohttp_server) -> tuple[str, UpstreamController]:
    server, control = await start_fake_gemini(aiohttp_server)
    return root_url(server), control


def make_client(root: str, **options) -> genai.Client:
    # attempts=1: no SDK retries, and connection errors raise at once instead of the
    # SDK's implicit 1-10 s sleep-and-retry.
    options.setdefault("retry_options", types.HttpRetryOptions(attempts=1))
    return genai.Client(
        api_key="gm-key",
        http_options=types.HttpOptions(base_url=root, api_version="v1beta", **options),
    )


@pytest.fixture
async def client(fake) -> AsyncIterator[genai.Client]:
    sdk = make_client(fake[0])
    yield sdk
    await sdk.aio.aclose()


async def post(url: str, body: dict, headers: dict | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.text()


def config(**fields) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(**fields)


async def test_generate_content_answers_echo_with_usage(client, fake):
    response = await client.aio.models.generate_content(model=MODEL, contents="hello there")
    assert response.text == "echo: hello there"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (
        2,
        3,
        5,
    )
    assert response.model_version == MODEL and response.response_id
    seen = fake[1].last
    assert seen.path == f"/v1beta/models/{MODEL}:generateContent"
    assert seen.headers["x-goog-api-key"] == "gm-key"
    assert seen.body == {"contents": [{"parts": [{"text": "hello there"}], "role": "user"}]}


async def test_sdk_default_api_version_is_v1(fake):
    sdk = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=fake[0]))
    try:
        response = await sdk.aio.models.generate_content(model=MODEL, contents="hi")
    finally:
        await sdk.aio.aclose()
    assert response.text == "echo: hi"
    assert fake[1].last.path == f"/v1/models/{MODEL}:generateContent"


async def test_key_in_query_is_accepted_and_a_missing_key_is_403(fake):
    url = f"{fake[0]}/v1beta/models/{MODEL}:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    status, text = await post(f"{url}?key=abc", body)
    assert status == 200 and json.loads(text)["candidates"][0]["content"]["role"] == "model"
    status, text = await post(url, body)
    assert status == 403
    assert json.loads(text)["error"]["status"] == "PERMISSION_DENIED"


async def test_unknown_key_is_invalid_argument(client, fake):
    fake[1].api_keys = {"other"}
    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"


async def test_stream_chunks_text_with_running_usage(client, fake):
    stream = await client.aio.models.generate_content_stream(model=MODEL, contents="a b c d")
    chunks = [chunk async for chunk in stream]
    assert [c.text for c in chunks] == ["echo: a", " b c", " d"]
    assert [c.candidates[0].finish_reason for c in chunks] == [None, None, types.FinishReason.STOP]
    assert [c.usage_metadata.candidates_token_count for c in chunks] == [2, 4, 5]
    assert fake[1].last.query == {"alt": "sse"}


async def test_raw_sse_uses_crlf_separators_and_plain_stream_is_a_json_array(fake):
    url = f"{fake[0]}/v1beta/models/{MODEL}:streamGenerateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "x y"}]}]}
    status, sse = await post(f"{url}?alt=sse", body, {"x-goog-api-key": "k"})
    assert status == 200 and sse.startswith("data: {") and sse.endswith("}\r\n\r\n")
    events = [json.loads(e.removeprefix("data: ")) for e in sse.split("\r\n\r\n") if e]
    status, array = await post(url, body, {"x-goog-api-key": "k"})
    elements = json.loads(array)
    assert len(elements) == len(events) == 3
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_function_calls_are_parallel_for_two_cities(client):
    response = await client.aio.models.generate_content(
        model=MODEL, contents="weather in two cities?", config=config(tools=[WEATHER])
    )
    assert [(c.name, c.args) for c in response.function_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "London"}),
    ]
    assert response.candidates[0].finish_reason == types.FinishReason.STOP


async def test_function_response_turn_gets_a_text_answer(client, fake):
    call = types.Part.from_function_call(name="get_weather", args={"city": "Paris"})
    result = types.Part.from_function_response(name="get_weather", response={"temp": "18C"})
    contents = [
        types.Content(role="user", parts=[types.Part(text="weather in Paris?")]),
        types.Content(role="model", parts=[call]),
        types.Content(role="user", parts=[result]),
    ]
    response = await client.aio.models.generate_content(
        model=MODEL, contents=contents, config=config(tools=[WEATHER])
    )
    assert response.text == 'echo: {"temp": "18C"}'
    sent = fake[1].last.body["contents"][2]["parts"][0]
    assert sent["functionResponse"] == {"name": "get_weather", "response": {"temp": "18C"}}


async def test_function_calling_mode_any_forces_and_none_disables(client):
    def mode(name: str) -> types.GenerateContentConfig:
        calling = types.FunctionCallingConfig(mode=name)
        return config(
            tools=[WEATHER], tool_config=types.ToolConfig(function_calling_config=calling)
        )

    forced = await client.aio.models.generate_content(
        model=MODEL, contents="hello", config=mode("ANY")
    )
    assert forced.function_calls[0].name == "get_weather"
    plain = await client.aio.models.generate_content(
        model=MODEL, contents="weather?", config=mode("NONE")
    )
    assert plain.function_calls is None and plain.text == "echo: weather?"


async def test_generation_config_limits_and_json_mode(client, fake):
    short = await client.aio.models.generate_content(
        model=MODEL, contents="one two three", config=config(max_output_tokens=2)
    )
    assert (
        short.text == "echo: one"
        and short.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    )
    stopped = await client.aio.models.generate_content(
        model=MODEL, contents="a END b", config=config(stop_sequences=["END"])
    )
    assert (
        stopped.text == "echo: a "
        and stopped.candidates[0].finish_reason == types.FinishReason.STOP
    )
    schema = {
        "type": "OBJECT",
        "properties": {"answer": {"type": "STRING"}, "n": {"type": "INTEGER"}},
    }
    json_mode = config(
        response_mime_type="application/json", response_schema=schema, temperature=0.2, top_p=0.9
    )
    structured = await client.aio.models.generate_content(
        model=MODEL, contents="q", config=json_mode
    )
    assert structured.parsed == {"answer": "echo: q", "n": 1}
    assert fake[1].last.body["generationConfig"]["topP"] == 0.9


async def test_images_system_instruction_and_casing_reach_the_provider(client, fake):
    parts = [
        types.Part(text="describe"),
        types.Part.from_bytes(data=PNG, mime_type="image/png"),
        types.Part(
            file_data=types.FileData(file_uri="https://example.com/cat.png", mime_type="image/png")
        ),
    ]
    response = await client.aio.models.generate_content(
        model=MODEL,
        contents=[types.Content(role="user", parts=parts)],
        config=config(system_instruction="be brief"),
    )
    assert response.text == "echo: describe"
    body = fake[1].last.body
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}], "role": "user"}
    # google-genai mixes casings: camelCase part keys around snake_case inner keys.
    assert body["contents"][0]["parts"][1] == {
        "inlineData": {"data": base64.b64encode(PNG).decode(), "mime_type": "image/png"}
    }
    assert body["contents"][0]["parts"][2]["fileData"]["file_uri"] == "https://example.com/cat.png"


async def test_invalid_requests_are_400_invalid_argument(fake):
    url = f"{fake[0]}/v1beta/models/{MODEL}:generateContent?key=k"
    status, text = await post(
        url, {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxTokens": 5}}
    )
    assert status == 400
    assert json.loads(text)["error"] == {
        "code": 400,
        "message": 'Invalid JSON payload received. Unknown name "maxTokens" at '
        "'generation_config': Cannot find field.",
        "status": "INVALID_ARGUMENT",
    }
    bad_image = {
        "contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": "%%%"}}]}]
    }
    status, text = await post(url, bad_image)
    assert status == 400 and "Base64 decoding failed" in text


async def test_thinking_and_cached_content_show_in_usage(fake):
    url = f"{fake[0]}/v1beta/models/{MODEL}:generateContent?key=k"
    body = {
        "contents": [{"parts": [{"text": "hi"}]}],
        "cachedContent": "cachedContents/abc",
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 128}},
    }
    status, text = await post(url, body)
    usage = json.loads(text)["usageMetadata"]
    assert status == 200
    assert usage["cachedContentTokenCount"] == 32 and usage["thoughtsTokenCount"] == 12
    assert (
        usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"] + 12
    )


async def test_embed_content_uses_batch_embed_contents(client, fake):
    result = await client.aio.models.embed_content(
        model="text-embedding-004",
        contents=["a", "b"],
        config=types.EmbedContentConfig(output_dimensionality=4),
    )
    assert [len(e.values) for e in result.embeddings] == [4, 4]
    assert result.embeddings[0].values != result.embeddings[1].values
    assert fake[1].last.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    single = {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4}
    status, text = await post(
        f"{fake[0]}/v1beta/models/text-embedding-004:embedContent?key=k", single
    )
    assert status == 200 and json.loads(text)["embedding"]["values"] == result.embeddings[0].values


async def test_count_tokens(client):
    counted = await client.aio.models.count_tokens(model=MODEL, contents="a b c")
    assert counted.total_tokens == 3


# -- scripted faults ----------------------------------------------------------------


async def test_500_in_gemini_shape(client, fake):
    fake[1].fail(500)
    with pytest.raises(errors.ServerError) as caught:
        await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert (caught.value.code, caught.value.status) == (500, "INTERNAL")
    assert (await client.aio.models.generate_content(model=MODEL, contents="hi")).text == "echo: hi"


async def test_sdk_retry_options_retry_a_503(fake):
    fake[1].fail(503)
    retry = types.HttpRetryOptions(attempts=2, initial_delay=0.01, max_delay=0.01, jitter=0)
    sdk = make_client(fake[0], retry_options=retry)
    try:
        response = await sdk.aio.models.generate_content(model=MODEL, contents="again")
    finally:
        await sdk.aio.aclose()
    assert response.text == "echo: again" and len(fake[1].requests) == 2


async def test_429_carries_retry_info(client, fake):
    fake[1].fail(429, retry_after=7)
    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.status == "RESOURCE_EXHAUSTED"
    assert caught.value.details["error"]["details"][0]["retryDelay"] == "7s"


async def test_400_with_a_scripted_message(client, fake):
    fake[1].fail(400, "The input token count exceeds the maximum")
    with pytest.raises(errors.ClientError, match="input token count exceeds"):
        await client.aio.models.generate_content(model=MODEL, contents="hi")


async def test_slow_answer_times_out_the_client(fake):
    fake[1].slow(0.5)
    sdk = make_client(fake[0], timeout=100)  # milliseconds
    try:
        with pytest.raises(TimeoutError):
            await sdk.aio.models.generate_content(model=MODEL, contents="hi")
    finally:
        await sdk.aio.aclose()


async def test_dropped_stream_breaks_the_client_read(client, fake):
    fake[1].drop_stream(after_events=1)
    texts = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in await client.aio.models.generate_content_stream(
            model=MODEL, contents="a b c d"
        ):
            texts.append(chunk.text)
    assert texts == ["echo: a"]


async def test_in_stream_error_chunk_raises_in_the_sdk(client, fake):
    fake[1].error_in_stream(after_events=1)
    with pytest.raises(errors.ServerError) as caught:
        async for _ in await client.aio.models.generate_content_stream(
            model=MODEL, contents="a b c d"
        ):
            pass
    assert caught.value.status == "UNAVAILABLE"


async def test_delay_between_events(client, fake):
    fake[1].always = Fault(event_delay_s=0.05)
    started = time.monotonic()
    async for _ in await client.aio.models.generate_content_stream(model=MODEL, contents="a b c d"):
        pass
    assert time.monotonic() - started >= 3 * 0.05


async def test_counts_requests_in_flight(client, fake):
    fake[1].always = Fault(delay_s=0.5)
    await asyncio.gather(
        *(client.aio.models.generate_content(model=MODEL, contents=str(i)) for i in range(3))
    )
    assert fake[1].max_in_flight == 3 and fake[1].in_flight == 0


async def test_include_thoughts_adds_a_thought_part(client, fake):
    thinking = types.ThinkingConfig(include_thoughts=True, thinking_budget=256)
    response = await client.aio.models.generate_content(
        model=MODEL, contents="hi", config=config(thinking_config=thinking)
    )
    thought, answer = response.candidates[0].content.parts
    assert thought.thought and answer.text == "echo: hi"
    assert response.usage_metadata.thoughts_token_count == 12
    # Another mixed casing: camelCase "thinkingConfig" holding snake_case keys.
    sent = fake[1].last.body["generationConfig"]["thinkingConfig"]
    assert sent == {"include_thoughts": True, "thinking_budget": 256}
