"""The Gemini surface and adapter end to end, with the official SDKs over loopback HTTP.

google-genai in front (api_version v1beta and v1) of the fake Gemini upstream, the fake OpenAI
upstream, the mock and, through the hub, the fake Anthropic upstream; and the openai SDK in
front of the fake Gemini upstream. Assertions look at what reached the upstream as well as at
what came back.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator

import openai
import pytest
from fakes.anthropic_upstream import start_fake_anthropic
from fakes.control import UpstreamController, root_url
from fakes.echo_model import embedding
from fakes.gemini_upstream import start_fake_gemini
from fakes.openai_schema import validate_openai
from google import genai
from google.genai import errors, types

# google-genai's async client subclasses aiohttp.ClientSession, which aiohttp warns about on
# first use; the SDK does it, nothing here can avoid it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession is discouraged"
    ":DeprecationWarning"
)

SYSTEM = "be brief"
WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Current weather in a city",
    parameters={"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                "required": ["city"]})])
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)
OPENAI_WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


@pytest.fixture
async def fake_gemini(aiohttp_server) -> tuple[str, UpstreamController]:
    server, control = await start_fake_gemini(aiohttp_server)
    return root_url(server), control


@pytest.fixture
async def fake_anthropic(aiohttp_server) -> tuple[str, UpstreamController]:
    server, control = await start_fake_anthropic(aiohttp_server)
    return root_url(server), control


@pytest.fixture
async def url(gateway, fake_gemini, fake_openai, fake_anthropic) -> str:
    def target(provider: str, model: str) -> dict:
        return {"targets": [{"provider": provider, "model": model}]}

    server = await gateway({
        "providers": {
            "google": {"type": "gemini", "base_url": fake_gemini[0], "api_key": "gk-up"},
            "oai": {"type": "openai", "base_url": fake_openai.base_url, "api_key": "sk-up"},
            "claude": {"type": "anthropic", "base_url": fake_anthropic[0], "api_key": "ak-up"},
            "mock": {"type": "mock"}},
        "models": {"gem": target("google", "gemini-2.5-flash"),
                   "gem-embed": target("google", "gemini-embedding-001"),
                   "oai": target("oai", "gpt-4o-mini"),
                   "claude": target("claude", "claude-sonnet-4-5"),
                   "mock-small": target("mock", "mock-small")},
    })
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def client(url) -> AsyncIterator[genai.Client]:
    sdk = gemini_sdk(url, "v1beta")
    yield sdk
    await sdk.aio.aclose()


def gemini_sdk(url: str, version: str) -> genai.Client:
    return genai.Client(api_key="client-key", http_options=types.HttpOptions(
        base_url=url, api_version=version, retry_options=types.HttpRetryOptions(attempts=1)))


def openai_sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="client-key", max_retries=0)


# -- google-genai -> Gemini provider ---------------------------------------------------------


@pytest.mark.parametrize("version", ["v1beta", "v1"])
async def test_generate_content_reaches_gemini_with_the_provider_key(url, fake_gemini, version):
    sdk = gemini_sdk(url, version)
    answer = await sdk.aio.models.generate_content(
        model="gem", contents="hello gateway",
        config=types.GenerateContentConfig(system_instruction=SYSTEM, max_output_tokens=40))
    await sdk.aio.aclose()
    assert answer.text == "echo: hello gateway"
    assert answer.usage_metadata.prompt_token_count == 4
    sent = fake_gemini[1].last
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "gk-up"  # the provider's key, not the client's
    assert sent.body["systemInstruction"]["parts"] == [{"text": SYSTEM}]
    assert sent.body["generationConfig"] == {"maxOutputTokens": 40}


async def test_stream_reaches_gemini_as_sse_and_comes_back_in_chunks(client, fake_gemini):
    chunks = [chunk async for chunk in await client.aio.models.generate_content_stream(
        model="gem", contents="one two three four")]
    assert len(chunks) > 1
    assert "".join(c.text or "" for c in chunks) == "echo: one two three four"
    assert chunks[-1].usage_metadata.candidates_token_count == 5
    assert fake_gemini[1].last.query == {"alt": "sse"}


async def test_error_inside_the_gemini_stream_raises_in_the_sdk(client, fake_gemini):
    fake_gemini[1].error_in_stream(after_events=1)
    stream = await client.aio.models.generate_content_stream(
        model="gem", contents="one two three four five")
    received = []
    with pytest.raises(errors.ServerError) as caught:
        async for chunk in stream:
            received.append(chunk.text)
    assert received and caught.value.code == 503


async def test_unsupported_field_is_a_client_error_naming_it(client):
    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.generate_content(
            model="oai", contents="hi", config=types.GenerateContentConfig(top_k=5))
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert "generationConfig.topK" in caught.value.message


# -- google-genai -> every kind of provider --------------------------------------------------


@pytest.mark.parametrize("model", ["gem", "oai", "mock-small", "claude"])
async def test_generate_and_stream_through_any_provider(client, model):
    config = types.GenerateContentConfig(system_instruction=SYSTEM, max_output_tokens=40)
    answer = await client.aio.models.generate_content(model=model, contents="hello gateway",
                                                      config=config)
    chunks = [chunk async for chunk in await client.aio.models.generate_content_stream(
        model=model, contents="hello gateway", config=config)]
    assert answer.text == "echo: hello gateway"
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    assert "".join(c.text or "" for c in chunks) == "echo: hello gateway"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count > 0


async def test_openai_provider_receives_system_message_and_token_limit(client, fake_openai):
    await client.aio.models.generate_content(
        model="oai", contents="hello gateway",
        config=types.GenerateContentConfig(system_instruction=SYSTEM, max_output_tokens=40,
                                           stop_sequences=["STOP"], temperature=0.5))
    body = fake_openai.last.body
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [{"role": "system", "content": SYSTEM},
                                {"role": "user", "content": "hello gateway"}]
    assert (body["max_completion_tokens"], body["stop"], body["temperature"]) == (
        40, ["STOP"], 0.5)


@pytest.mark.parametrize("model", ["gem", "oai", "claude"])
async def test_parallel_function_calls_through_any_provider(client, model):
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=NO_AFC)
    answer = await client.aio.models.generate_content(
        model=model, contents="What is the weather in two cities?", config=config)
    calls = answer.function_calls
    assert [(c.name, c.args) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "London"})]
    chunks = [chunk async for chunk in await client.aio.models.generate_content_stream(
        model=model, contents="What is the weather in two cities?", config=config)]
    streamed = [c for chunk in chunks for c in chunk.function_calls or []]
    assert [c.args["city"] for c in streamed] == ["Paris", "London"]


async def test_function_responses_reach_openai_as_tool_messages(client, fake_openai):
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=NO_AFC)
    question = types.Content(role="user", parts=[types.Part.from_text(text="weather in Paris")])
    first = await client.aio.models.generate_content(model="oai", contents=[question],
                                                     config=config)
    call = first.function_calls[0]
    result = types.Part.from_function_response(name=call.name, response={"output": "sunny"})
    await client.aio.models.generate_content(
        model="oai", contents=[question, first.candidates[0].content,
                               types.Content(role="user", parts=[result])], config=config)
    messages = fake_openai.last.body["messages"]
    assert messages[1]["tool_calls"][0]["id"] == call.id
    assert messages[2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}


async def test_function_responses_reach_gemini_and_get_an_answer(client, fake_gemini):
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=NO_AFC)
    question = types.Content(role="user", parts=[types.Part.from_text(text="weather in Paris")])
    first = await client.aio.models.generate_content(model="gem", contents=[question],
                                                     config=config)
    result = types.Part.from_function_response(name="get_weather", response={"temp": 21})
    answer = await client.aio.models.generate_content(
        model="gem", contents=[question, first.candidates[0].content,
                               types.Content(role="user", parts=[result])], config=config)
    assert answer.text == 'echo: {"temp": 21}'


@pytest.mark.parametrize(("model", "size"), [("gem-embed", 16), ("oai", 8), ("mock-small", 16)])
async def test_embed_content_through_any_provider(client, model, size):
    result = await client.aio.models.embed_content(model=model, contents=["a b", "c"])
    assert [len(e.values) for e in result.embeddings] == [size, size]


async def test_embed_content_reaches_gemini_as_batch_for_the_target_model(client, fake_gemini):
    result = await client.aio.models.embed_content(
        model="gem-embed", contents=["hello"],
        config=types.EmbedContentConfig(output_dimensionality=8, task_type="RETRIEVAL_QUERY"))
    assert result.embeddings[0].values == embedding("hello", 8)
    sent = fake_gemini[1].last
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.body["requests"][0]["model"] == "models/gemini-embedding-001"
    assert sent.body["requests"][0]["taskType"] == "RETRIEVAL_QUERY"


# -- openai SDK -> Gemini provider -----------------------------------------------------------


async def test_openai_chat_against_gemini(url, fake_gemini):
    async with openai_sdk(url) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="gem", max_completion_tokens=30, temperature=0.1,
            messages=[{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": "hello gateway"}])
    validate_openai("chat.completion", raw.http_response.json())
    answer = raw.parse()
    assert answer.choices[0].message.content == "echo: hello gateway"
    assert answer.usage.prompt_tokens == 4 and answer.usage.completion_tokens == 3
    assert raw.headers["x-onyproxy-provider"] == "google"
    sent = fake_gemini[1].last
    assert sent.body["systemInstruction"] == {"parts": [{"text": SYSTEM}]}
    assert sent.body["generationConfig"] == {"maxOutputTokens": 30, "temperature": 0.1}
    assert sent.headers["x-goog-api-key"] == "gk-up"


async def test_openai_images_reach_gemini_as_inline_and_file_data(url, fake_gemini):
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJ"
           "RU5ErkJggg==")
    async with openai_sdk(url) as sdk:
        await sdk.chat.completions.create(model="gem", messages=[{"role": "user", "content": [
            {"type": "text", "text": "compare"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/b.webp"}}]}])
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(model="gem", messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/image"}}]}])
    assert fake_gemini[1].last.body["contents"][0]["parts"] == [
        {"text": "compare"}, {"inlineData": {"mimeType": "image/png", "data": png}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/b.webp"}}]
    assert caught.value.body["param"] == "messages[0].content[0].image_url.url"


async def test_openai_stream_against_gemini(url):
    async with openai_sdk(url) as sdk:
        stream = await sdk.chat.completions.create(
            model="gem", messages=[{"role": "user", "content": "one two three four"}],
            stream=True, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    for chunk in chunks:
        validate_openai("chat.completion.chunk", chunk.model_dump(exclude_unset=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three four"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5


async def test_openai_tool_calls_and_results_against_gemini(url, fake_gemini):
    question = {"role": "user", "content": "What is the weather in two cities?"}
    async with openai_sdk(url) as sdk:
        first = await sdk.chat.completions.create(model="gem", messages=[question],
                                                  tools=[OPENAI_WEATHER])
        calls = first.choices[0].message.tool_calls
        results = [{"role": "tool", "tool_call_id": c.id, "content": f"sunny{n}"}
                   for n, c in enumerate(calls)]
        second = await sdk.chat.completions.create(
            model="gem", tools=[OPENAI_WEATHER],
            messages=[question, first.choices[0].message.model_dump(exclude_none=True),
                      *results])
    assert first.choices[0].finish_reason == "tool_calls"
    assert [c.function.arguments for c in calls] == ['{"city":"Paris"}', '{"city":"London"}']
    assert second.choices[0].message.content == (
        'echo: {"output": "sunny0"} {"output": "sunny1"}')
    turn = fake_gemini[1].last.body["contents"][-1]
    assert turn == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny0"}}},
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny1"}}}]}


async def test_openai_streamed_tool_calls_against_gemini(url):
    async with openai_sdk(url) as sdk:
        stream = await sdk.chat.completions.create(
            model="gem", tools=[OPENAI_WEATHER], stream=True,
            messages=[{"role": "user", "content": "weather in two cities"}])
        chunks = [chunk async for chunk in stream]
    deltas = [t for c in chunks for t in c.choices[0].delta.tool_calls or []]
    assert [(t.index, t.function.arguments) for t in deltas] == [
        (0, '{"city":"Paris"}'), (1, '{"city":"London"}')]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_openai_embeddings_against_gemini_decode_from_base64(url, fake_gemini):
    async with openai_sdk(url) as sdk:  # the SDK asks for base64 unless told otherwise
        result = await sdk.embeddings.create(model="gem-embed", input=["a b", "c"], dimensions=4)
    assert [d.embedding for d in result.data] == [
        pytest.approx(embedding(text, 4), rel=1e-6) for text in ("a b", "c")]
    sent = fake_gemini[1].last
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert [r["outputDimensionality"] for r in sent.body["requests"]] == [4, 4]


async def test_openai_embeddings_floats_on_request(url):
    async with openai_sdk(url) as sdk:
        raw = await sdk.embeddings.with_raw_response.create(
            model="gem-embed", input="a b", encoding_format="float")
    body = raw.http_response.json()
    validate_openai("embedding.list", body)
    assert body["data"][0]["embedding"] == embedding("a b", 16)


def test_base64_is_little_endian_float32():
    # What the openai SDK decodes: numpy.frombuffer(base64.b64decode(s), dtype="float32").
    packed = base64.b64encode(struct.pack("<2f", 0.25, -2.0)).decode()
    assert packed == "AACAPgAAAMA="
