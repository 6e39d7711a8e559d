"""Calling the fake OpenAI upstream through the official ``openai`` SDK, checking the wire.

Shared by ``test_fake_openai_chat`` and ``test_fake_openai_faults``: each call returns what
was on the wire after validating it against OpenAI's published OpenAPI schemas; the fixtures
``fake`` (a started fake upstream) and ``client`` (the SDK pointed at it) are imported by both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes.openai_schema import validate_openai
from fakes.openai_upstream import FakeOpenAI, start_fake_openai
from openai import AsyncOpenAI


@pytest.fixture
async def fake(aiohttp_server: Any) -> FakeOpenAI:
    _, controller = await start_fake_openai(aiohttp_server)
    return controller


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    # No SDK retries by default, so each scripted failure reaches the test as it is.
    sdk = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    yield sdk
    await sdk.close()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


async def chat(client: AsyncOpenAI, text: str, **params: Any) -> dict[str, Any]:
    """One non-streamed call; returns the wire body after checking it against the spec."""
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=user(text), **params
    )
    body = raw.http_response.json()
    validate_openai("chat.completion", body)
    raw.parse()  # the SDK's own model accepts it too
    return body


async def stream(client: AsyncOpenAI, text: str, **params: Any) -> list[dict[str, Any]]:
    """One streamed call; returns its chunks as sent, each checked against the spec."""
    chunks = []
    sdk_stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=user(text), stream=True, **params
    )
    async for chunk in sdk_stream:
        wire = chunk.to_dict()  # only the fields that were on the wire
        validate_openai("chat.completion.chunk", wire)
        chunks.append(wire)
    return chunks
