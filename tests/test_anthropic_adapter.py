"""The Anthropic adapter on its own: headers, usage on the Exchange, errors, stream errors."""

import aiohttp
import pytest
from fakes.anthropic_upstream import start_fake_anthropic
from fakes.control import Fault, root_url

from onyproxy.config.model import ProviderConfig, TargetConfig
from onyproxy.exchange import Exchange
from onyproxy.providers.anthropic import AnthropicAdapter
from onyproxy.providers.base import UpstreamError

TARGET = TargetConfig(provider="claude", model="claude-sonnet-4-5")
SYSTEM = [{"type": "text", "text": "You answer questions about a long handbook. " * 5,
           "cache_control": {"type": "ephemeral"}}]


def body(**extra):
    return {"model": "client-name", "max_tokens": 32,
            "messages": [{"role": "user", "content": "hello there"}], **extra}


def exchange(shape="anthropic", headers=None) -> Exchange:
    return Exchange(request_id="req_1", surface=shape, shape=shape, operation="chat",
                    path="/v1/messages", headers=headers or {}, query={}, client_ip=None,
                    user_agent=None)


@pytest.fixture
async def adapter(aiohttp_server):
    server, control = await start_fake_anthropic(aiohttp_server)
    async with aiohttp.ClientSession() as session:
        config = ProviderConfig(type="anthropic", base_url=root_url(server), api_key="sk-ant")
        yield AnthropicAdapter("claude", config, session), control


async def send(adapter, ex, payload, stream=False):
    return await adapter.send(ex, TARGET, "chat", "anthropic", payload, stream, 5)


async def test_json_usage_counts_cache_reads_and_writes_as_prompt_tokens(adapter):
    claude, control = adapter
    first, second = exchange(), exchange()
    await send(claude, first, body(system=SYSTEM))
    await send(claude, second, body(system=SYSTEM))
    written = control.requests[0].body  # the fake caches the prefix up to cache_control
    assert written["model"] == "claude-sonnet-4-5" and "stream" not in written
    assert first.usage.prompt_tokens == second.usage.prompt_tokens > 30
    assert first.usage.cached_tokens == 0
    assert second.usage.cached_tokens == second.usage.prompt_tokens - 2  # "hello there"
    assert second.usage.completion_tokens == 3 and second.usage.reported


async def test_stream_usage_comes_from_message_start_and_message_delta(adapter):
    claude, control = adapter
    ex = exchange()
    reply = await send(claude, ex, body(), stream=True)
    names = [event.event async for event in reply.events]
    await reply.aclose()
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert (ex.usage.prompt_tokens, ex.usage.completion_tokens) == (2, 3)
    assert control.last.body["stream"] is True


async def test_headers_carry_the_provider_key_version_and_a_clients_beta_opt_in(adapter):
    claude, control = adapter
    await send(claude, exchange(headers={"anthropic-beta": "files-api-2025-04-14"}), body())
    assert control.last.headers["x-api-key"] == "sk-ant"
    assert control.last.headers["anthropic-version"] == "2023-06-01"
    assert control.last.headers["anthropic-beta"] == "files-api-2025-04-14"
    # A beta opt-in means nothing to an answer that is translated for another API.
    await send(claude, exchange("openai", {"anthropic-beta": "files-api-2025-04-14"}), body())
    assert "anthropic-beta" not in control.last.headers


@pytest.mark.parametrize(("status", "retryable"), [(529, True), (500, True), (429, True),
                                                    (400, False), (404, False)])
async def test_errors_are_read_from_anthropics_error_shape(adapter, status, retryable):
    claude, control = adapter
    control.fail(status, "model: not here", retry_after=1 if status == 429 else None)
    with pytest.raises(UpstreamError) as caught:
        await send(claude, exchange(), body())
    assert caught.value.status == status and caught.value.retryable is retryable
    if not retryable:
        assert caught.value.message == "model: not here"
        assert caught.value.error_type in ("invalid_request_error", "not_found_error")
    if status == 429:
        assert caught.value.retry_after_s == 1


async def test_error_event_inside_a_stream_raises_with_its_status(adapter):
    claude, control = adapter
    control.script(Fault(error_after_events=3, status=529))
    reply = await send(claude, exchange(), body(), stream=True)
    seen = []
    with pytest.raises(UpstreamError) as caught:
        async for event in reply.events:
            seen.append(event.event)
    await reply.aclose()
    assert seen == ["message_start", "content_block_start", "ping"]
    assert caught.value.status == 529 and caught.value.error_type == "overloaded_error"
    assert not caught.value.retryable  # bytes may already have reached the client
