"""The 3 x 3 matrix: each official SDK against each provider, for chat, streams and tool calls.

Every cell goes through the gateway over loopback to a fake upstream that speaks the provider's
wire format; the cell passes when the SDK gets the provider's answer back in its own shape.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
from fakes.anthropic_upstream import start_fake_anthropic
from fakes.control import root_url
from fakes.gemini_upstream import start_fake_gemini
from google import genai
from google.genai import types

pytestmark = pytest.mark.filterwarnings(
    # google-genai's async client subclasses aiohttp.ClientSession; aiohttp warns about that.
    "ignore:Inheritance class AiohttpClientSession from ClientSession is discouraged"
    ":DeprecationWarning"
)

PROVIDERS = ["openai", "anthropic", "gemini"]
PROMPT = "hello from the matrix"
TOOL_PROMPT = "what is the weather in two cities"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture
async def url(gateway, fake_openai, aiohttp_server) -> str:
    anthropic_server, _ = await start_fake_anthropic(aiohttp_server)
    gemini_server, _ = await start_fake_gemini(aiohttp_server)
    server = await gateway({
        "providers": {
            "openai": {"type": "openai", "base_url": fake_openai.base_url, "api_key": "k1"},
            "anthropic": {"type": "anthropic", "base_url": root_url(anthropic_server),
                          "api_key": "k2"},
            "gemini": {"type": "gemini", "base_url": root_url(gemini_server), "api_key": "k3"}},
        "models": {
            "openai": {"targets": [{"provider": "openai", "model": "gpt-4o-mini"}]},
            "anthropic": {"targets": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]},
            "gemini": {"targets": [{"provider": "gemini", "model": "gemini-2.5-flash"}]}},
    })
    return str(server.make_url("")).rstrip("/")


# -- openai SDK ---------------------------------------------------------------------------------

def openai_client(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="client", max_retries=0)


OPENAI_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}


async def openai_chat(url: str, model: str) -> str:
    async with openai_client(url) as client:
        answer = await client.chat.completions.create(
            model=model, max_tokens=100, messages=[{"role": "user", "content": PROMPT}])
    return answer.choices[0].message.content


async def openai_stream(url: str, model: str) -> str:
    async with openai_client(url) as client:
        stream = await client.chat.completions.create(
            model=model, max_tokens=100, stream=True,
            messages=[{"role": "user", "content": PROMPT}])
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def openai_tools(url: str, model: str) -> list[tuple[str, dict]]:
    async with openai_client(url) as client:
        answer = await client.chat.completions.create(
            model=model, max_tokens=100, tools=[OPENAI_TOOL],
            messages=[{"role": "user", "content": TOOL_PROMPT}])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    return [(c.function.name, json.loads(c.function.arguments))
            for c in choice.message.tool_calls]


# -- anthropic SDK ------------------------------------------------------------------------------

def anthropic_client(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="client", max_retries=0)


async def anthropic_chat(url: str, model: str) -> str:
    async with anthropic_client(url) as client:
        message = await client.messages.create(
            model=model, max_tokens=100, messages=[{"role": "user", "content": PROMPT}])
    return "".join(block.text for block in message.content if block.type == "text")


async def anthropic_stream(url: str, model: str) -> str:
    async with anthropic_client(url) as client, client.messages.stream(
            model=model, max_tokens=100,
            messages=[{"role": "user", "content": PROMPT}]) as stream:
        return "".join([text async for text in stream.text_stream])


async def anthropic_tools(url: str, model: str) -> list[tuple[str, dict]]:
    async with anthropic_client(url) as client:
        message = await client.messages.create(
            model=model, max_tokens=100,
            tools=[{"name": "get_weather", "input_schema": SCHEMA}],
            messages=[{"role": "user", "content": TOOL_PROMPT}])
    assert message.stop_reason == "tool_use"
    return [(b.name, b.input) for b in message.content if b.type == "tool_use"]


# -- google-genai SDK ---------------------------------------------------------------------------

def gemini_client(url: str) -> genai.Client:
    return genai.Client(api_key="client", http_options=types.HttpOptions(
        base_url=url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)))


GEMINI_CONFIG = types.GenerateContentConfig(max_output_tokens=100)


async def gemini_chat(url: str, model: str) -> str:
    client = gemini_client(url)
    try:
        answer = await client.aio.models.generate_content(model=model, contents=PROMPT,
                                                          config=GEMINI_CONFIG)
    finally:
        await client.aio.aclose()
    return answer.text


async def gemini_stream(url: str, model: str) -> str:
    client = gemini_client(url)
    try:
        stream = await client.aio.models.generate_content_stream(model=model, contents=PROMPT,
                                                                 config=GEMINI_CONFIG)
        return "".join([chunk.text or "" async for chunk in stream])
    finally:
        await client.aio.aclose()


async def gemini_tools(url: str, model: str) -> list[tuple[str, dict]]:
    client = gemini_client(url)
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", parameters_json_schema=SCHEMA)])
    config = types.GenerateContentConfig(
        max_output_tokens=100, tools=[tool],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    try:
        answer = await client.aio.models.generate_content(model=model, contents=TOOL_PROMPT,
                                                          config=config)
    finally:
        await client.aio.aclose()
    return [(call.name, dict(call.args)) for call in answer.function_calls]


SDKS = {
    "openai": (openai_chat, openai_stream, openai_tools),
    "anthropic": (anthropic_chat, anthropic_stream, anthropic_tools),
    "gemini": (gemini_chat, gemini_stream, gemini_tools),
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("sdk", list(SDKS))
async def test_chat(url, sdk, provider):
    assert await SDKS[sdk][0](url, provider) == f"echo: {PROMPT}"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("sdk", list(SDKS))
async def test_stream(url, sdk, provider):
    assert await SDKS[sdk][1](url, provider) == f"echo: {PROMPT}"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("sdk", list(SDKS))
async def test_parallel_tool_calls(url, sdk, provider):
    calls = await SDKS[sdk][2](url, provider)
    assert calls == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "London"})]
