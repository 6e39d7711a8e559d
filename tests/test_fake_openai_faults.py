"""The fake OpenAI upstream answers errors in OpenAI's shape and misbehaves on demand.

Everything here goes through the official ``openai`` SDK (or raw aiohttp) over loopback
HTTP: scripted statuses, slow answers, hang-ups, broken streams, and what was recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import openai
import pytest
from fakes.openai_schema import validate_openai
from fakes.openai_sdk import chat, client, fake, stream, user
from fakes.openai_upstream import Behaviour, FakeOpenAI, start_fake_openai
from openai import AsyncOpenAI

__all__ = ["client", "fake"]  # fixtures

# --- errors in OpenAI's shape --------------------------------------------------------------


async def test_bad_requests_answer_openai_errors(fake: FakeOpenAI) -> None:
    async with aiohttp.ClientSession() as session:
        cases = [
            session.post(f"{fake.base_url}/chat/completions", data=b"{not json"),
            session.post(f"{fake.base_url}/chat/completions", json={"model": "m"}),
            session.post(f"{fake.base_url}/embeddings", json={"model": "m", "input": ""}),
            session.get(f"{fake.base_url}/nowhere"),
        ]
        statuses = []
        for call in cases:
            async with call as response:
                validate_openai("error", await response.json())
                statuses.append(response.status)
    assert statuses == [400, 400, 400, 404]


async def test_wrong_api_key_is_refused(aiohttp_server: Any) -> None:
    _, fake = await start_fake_openai(aiohttp_server, FakeOpenAI(api_key="sk-right"))
    async with AsyncOpenAI(base_url=fake.base_url, api_key="sk-wrong", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            await sdk.models.list()
    assert caught.value.code == "invalid_api_key"


# --- failing on demand -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "error_class"),
    [
        (Behaviour.error(500), openai.InternalServerError),
        (Behaviour.error(400, "bad temperature", param="temperature"), openai.BadRequestError),
        (Behaviour.error(429, retry_after=7), openai.RateLimitError),
    ],
)
async def test_scripted_status_reaches_the_sdk(
    client: AsyncOpenAI, fake: FakeOpenAI, behaviour: Behaviour, error_class: type[Exception]
) -> None:
    fake.script(behaviour)
    with pytest.raises(error_class) as caught:
        await client.chat.completions.create(model="m", messages=user("hi"))
    response = caught.value.response  # type: ignore[attr-defined]
    validate_openai("error", response.json())
    assert response.status_code == behaviour.status
    assert response.json()["error"] == behaviour.error_body
    assert dict(response.headers).get("retry-after") == behaviour.headers.get("retry-after")
    assert (await chat(client, "again"))["choices"][0]["message"]["content"] == "echo: again"


async def test_sdk_retries_after_429_and_both_requests_are_recorded(fake: FakeOpenAI) -> None:
    fake.script(Behaviour.error(429, retry_after=0.1))
    async with AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=1) as sdk:
        result = await sdk.chat.completions.create(model="m", messages=user("hi"))
    assert result.choices[0].message.content == "echo: hi"
    first, second = fake.requests_to("/chat/completions")
    # Timers may fire a hair early (the loop's clock resolution), hence the margins here.
    assert first.body == second.body and second.at - first.at >= 0.09
    assert not fake.pending


async def test_slow_answer_waits_and_a_client_timeout_disconnects(
    client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.script(Behaviour.slow(0.2))
    started = time.monotonic()
    await chat(client, "hi")
    assert time.monotonic() - started >= 0.19
    fake.script(Behaviour.slow(30))
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="m", messages=user("hi"), timeout=0.2)
    async with asyncio.timeout(5):
        while fake.in_flight:
            await asyncio.sleep(0.01)
    assert fake.disconnects == 1


async def test_hang_up_is_a_connection_error(client: AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.script(Behaviour.hang_up())
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="m", messages=user("hi"))


async def test_dropped_stream_delivers_k_events_then_fails(
    client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.script(Behaviour.drop_stream(after_events=3))
    received = []
    with pytest.raises(openai.APIConnectionError):
        sdk_stream = await client.chat.completions.create(
            model="m", messages=user("a b c d e f"), stream=True
        )
        async for chunk in sdk_stream:
            received.append(chunk)
    assert len(received) == 3


async def test_error_in_stream_raises_with_its_message(
    client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.script(Behaviour.error_in_stream(after_events=2, message="overloaded mid-way"))
    received = []
    with pytest.raises(openai.APIError, match="overloaded mid-way"):
        sdk_stream = await client.chat.completions.create(
            model="m", messages=user("a b c"), stream=True
        )
        async for chunk in sdk_stream:
            received.append(chunk)
    assert len(received) == 2


async def test_trickle_spaces_the_stream_events(client: AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.script(Behaviour.trickle(0.05))
    started = time.monotonic()
    chunks = await stream(client, "one two")  # 5 chunks and [DONE]: 5 gaps
    assert len(chunks) == 5
    assert time.monotonic() - started >= 0.24


async def test_path_scoped_script_skips_other_paths(client: AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.script(Behaviour.error(503), path="/chat/completions")
    await client.models.list()
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="m", messages=user("hi"))
    assert [r.path for r in fake.requests] == ["/v1/models", "/v1/chat/completions"]


async def test_default_behaviour_applies_to_every_request(
    client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.default = Behaviour.error(500)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.models.list()


# --- what reached the upstream -------------------------------------------------------------


async def test_requests_are_recorded_with_headers_and_body(
    client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.script(Behaviour.error(500))
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="m", messages=user("first"), temperature=0.5)
    await client.embeddings.create(model="e", input="x")
    chat_request, embedding_request = fake.requests
    assert chat_request.method == "POST" and chat_request.path == "/v1/chat/completions"
    assert chat_request.headers["authorization"] == "Bearer sk-test"
    assert chat_request.body == {"model": "m", "messages": user("first"), "temperature": 0.5}
    assert json.loads(chat_request.raw) == chat_request.body
    assert fake.last is embedding_request and embedding_request.body["input"] == "x"


async def test_in_flight_counts_concurrent_requests(client: AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.default = Behaviour.slow(0.2)
    calls = [client.chat.completions.create(model="m", messages=user("hi")) for _ in range(3)]
    await asyncio.gather(*calls)
    assert fake.max_in_flight == 3
    assert fake.in_flight == 0
