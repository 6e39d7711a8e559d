"""Calling the fake OpenAI upstream through the official ``openai`` SDK, checking the wire.

Shared by ``test_fake_openai_chat`` and ``test_fake_openai_faults``: each call returns what
was on the wire after validating it against OpenAI's published OpenAPI schemas.
"""

from __future__ import annotations

from typing import Any

from fakes.openai_schema import validate_openai
from openai import AsyncOpenAI


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
