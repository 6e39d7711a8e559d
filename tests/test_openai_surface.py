"""The OpenAI surface end to end: official SDK in front, fake OpenAI upstream behind."""

import json

import aiohttp
import openai
import pytest
from conftest import openai_provider
from fakes.openai_schema import validate_openai


def sdk(server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="client-key",
                              max_retries=0)


MESSAGES = [{"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello gateway"}]


async def test_chat_non_stream_passes_through(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    async with sdk(server) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-test", messages=MESSAGES)
    answer = raw.parse()
    assert answer.choices[0].message.content == "echo: hello gateway"
    validate_openai("chat.completion", raw.http_response.json())
    assert raw.headers["x-onyproxy-provider"] == "up"
    sent = fake_openai.last
    assert sent.body["model"] == "gpt-4o-mini"  # the provider's name, not the client's
    assert sent.body["messages"] == MESSAGES
    assert sent.headers["authorization"] == "Bearer sk-up"  # the provider key, not the client's


async def test_chat_stream_relays_events_and_strips_usage_chunk(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    async with sdk(server) as client:
        stream = await client.chat.completions.create(model="gpt-test", messages=MESSAGES,
                                                      stream=True)
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello gateway"
    assert all(c.choices for c in chunks), "usage chunk must not reach a client that didn't ask"
    assert fake_openai.last.body["stream_options"] == {"include_usage": True}


async def test_chat_stream_keeps_usage_chunk_when_asked(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    async with sdk(server) as client:
        stream = await client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, stream=True,
            stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3


async def test_embeddings_with_sdk_default_base64(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    async with sdk(server) as client:
        result = await client.embeddings.create(model="gpt-test", input=["a", "b c"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) > 1
    assert fake_openai.last.body["encoding_format"] == "base64"


async def test_mock_provider_with_sdk(gateway):
    server = await gateway()
    async with sdk(server) as client:
        answer = await client.chat.completions.create(model="mock-small", messages=MESSAGES)
        stream = await client.chat.completions.create(model="mock-small", messages=MESSAGES,
                                                      stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
        vectors = await client.embeddings.create(model="mock-small", input="hi")
    assert answer.choices[0].message.content == text == "echo: hello gateway"
    assert len(vectors.data[0].embedding) == 16


async def test_models_lists_configured_names(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    async with sdk(server) as client:
        models = [m.id async for m in client.models.list()]
    assert models == ["gpt-test", "mock-small"]


async def test_a_model_is_retrieved_in_the_spec_shape_or_is_a_404(gateway):
    server = await gateway()
    async with sdk(server) as client:
        model = await client.models.retrieve("mock-small")
        with pytest.raises(openai.NotFoundError) as caught:
            await client.models.retrieve("gpt-nope")
    validate_openai("Model", model.model_dump())
    assert model.id == "mock-small" and caught.value.code == "model_not_found"


async def test_unknown_model_is_404_naming_it(gateway):
    server = await gateway()
    async with sdk(server) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert "gpt-nope" in caught.value.message


async def test_every_chunk_on_the_wire_validates_against_the_spec(gateway, fake_openai):
    server = await gateway(openai_provider(fake_openai))
    for model in ("gpt-test", "mock-small"):
        async with aiohttp.ClientSession() as http:
            resp = await http.post(server.make_url("/v1/chat/completions"), json={
                "model": model, "messages": MESSAGES, "stream": True})
            assert resp.headers["content-type"].startswith("text/event-stream")
            lines = [line.decode().strip() async for line in resp.content]
        data = [line[len("data: "):] for line in lines if line.startswith("data: ")]
        assert data[-1] == "[DONE]"
        for payload in data[:-1]:
            validate_openai("chat.completion.chunk", json.loads(payload))


async def test_mock_answer_validates_against_the_spec(gateway):
    server = await gateway()
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.make_url("/v1/chat/completions"),
                               json={"model": "mock-small", "messages": MESSAGES})
        validate_openai("chat.completion", await resp.json())
        resp = await http.post(server.make_url("/v1/embeddings"),
                               json={"model": "mock-small", "input": ["x", "y"]})
        validate_openai("embedding.list", await resp.json())
        resp = await http.get(server.make_url("/v1/models"))
        validate_openai("model.list", await resp.json())
