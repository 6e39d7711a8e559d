"""The ``metering`` plugin's hooks, called directly with hand-built exchanges and a real
SQLite store: what an event holds, estimates, flags, durability before the answer, budgets."""

from __future__ import annotations

import logging
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import bpe_openai
import pytest
from conftest import make_config
from multidict import CIMultiDict

from onyproxy.errors import GatewayError
from onyproxy.exchange import Attempt, Exchange, Identity
from onyproxy.sse import Event
from onyproxy.storage import open_store
from plugins.metering import Plugin
from plugins.metering.config import MeteringConfig

O200K = bpe_openai.get_encoding("o200k_base")
PRICED = {"input": "3", "cached_input": "0.3", "output": "15"}
MODELS = {
    "claude-test": {"targets": [{"provider": "up", "model": "claude-sonnet-4-5",
                                 "price": PRICED}]},
    "mystery": {"targets": [{"provider": "up", "model": "mystery-model-1"}]},
    "mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]},
}
CHAT = {"model": "claude-test", "max_tokens": 100,
        "messages": [{"role": "user", "content": "Tell me about the Bosphorus bridge."}]}


class Metrics:
    def __init__(self) -> None:
        self.depths: list[int] = []
        self.flush_errors = 0

    def spool(self, depth: int) -> None:
        self.depths.append(depth)

    def spool_flush_error(self) -> None:
        self.flush_errors += 1


@pytest.fixture
async def metering(tmp_path):
    config = make_config({"providers": {"up": {"type": "openai", "base_url": "http://x.test"},
                                        "mock": {"type": "mock"}},
                          "models": MODELS}, tmp_path=tmp_path)
    store = await open_store(config.storage.url)
    gateway = SimpleNamespace(config=config, store=store, metrics=Metrics(), readiness={})
    plugin = Plugin(MeteringConfig(spool_dir=str(tmp_path / "spool")), gateway)
    await plugin.start()
    yield plugin
    await plugin.stop()
    await store.close()


def exchange(body: dict[str, Any] | None = None, *, identity: Identity | None = None,
             stream: bool = False, headers: dict[str, str] | None = None,
             request_id: str = "req_1") -> Exchange:
    body = body or CHAT
    return Exchange(request_id=request_id, surface="openai", shape="openai",
                    operation="chat", path="/v1/chat/completions",
                    headers=CIMultiDict(headers or {}), query={}, client_ip="203.0.113.5",
                    user_agent="openai-python/2.0", body=body, model=body["model"],
                    stream=stream, identity=identity)


def answered(ex: Exchange, prompt: int = 0, completion: int = 0, cached: int = 0,
             reported: bool = True, model: str = "claude-sonnet-4-5") -> Exchange:
    ex.attempts.append(Attempt(provider="up", model=model, started=ex.started, status=200))
    ex.provider, ex.provider_model, ex.status = "up", model, 200
    ex.usage.prompt_tokens, ex.usage.completion_tokens = prompt, completion
    ex.usage.cached_tokens, ex.usage.reported = cached, reported
    return ex


async def stored(plugin: Plugin) -> list:
    await plugin.flusher.flush()
    return await plugin.gateway.store.list_usage_events()


def tokens(*texts: str) -> int:
    return len(O200K.encode_ordinary("\n".join(texts)))


async def test_an_answered_call_is_one_event_with_exact_cost_and_no_content(metering):
    ex = answered(exchange(identity=Identity("acc_1", "key_1")), 1200, 300, cached=200)
    await metering.on_request(ex)
    await metering.on_complete(ex)
    (event,) = await stored(metering)
    # (1000 x 3 + 200 x 0.3 + 300 x 15) / 1M
    assert ex.cost_usd == event.cost_usd == Decimal("0.00756")
    assert (event.account_id, event.key_id, event.model, event.provider,
            event.provider_model) == ("acc_1", "key_1", "claude-test", "up", "claude-sonnet-4-5")
    assert (event.input_tokens, event.output_tokens, event.cached_tokens) == (1200, 300, 200)
    assert (event.surface, event.status, event.attempts, event.streamed) == (
        "openai", 200, 1, False)
    assert event.flags == [] and event.billable
    assert (event.ip, event.user_agent) == ("203.0.113.5", "openai-python/2.0")
    assert "Bosphorus" not in repr(event)


async def test_missing_provider_usage_is_counted_with_the_tokenizer(metering):
    ex = answered(exchange(), reported=False)
    ex.response = {"choices": [{"message": {"role": "assistant",
                                            "content": "It links Europe and Asia."}}]}
    await metering.on_complete(ex)
    (event,) = await stored(metering)
    prompt = tokens("user", "Tell me about the Bosphorus bridge.") + 4
    assert (event.input_tokens, event.output_tokens) == (prompt, tokens(
        "It links Europe and Asia."))
    assert event.flags == ["estimated"]
    assert event.cost_usd == (prompt * 3 + event.output_tokens * 15) / Decimal(1_000_000)


async def test_a_client_gone_mid_stream_is_metered_for_what_was_relayed(metering):
    ex = answered(exchange(stream=True), reported=False)
    await metering.on_request(ex)
    for text in ("The bridge", " opened in", " 1973."):
        await metering.on_chunk(ex, Event.of({"choices": [{"delta": {"content": text}}]}))
    ex.flags.add("client_disconnected")
    await metering.on_complete(ex)
    (event,) = await stored(metering)
    assert event.flags == ["partial", "estimated"] and event.streamed
    assert event.output_tokens == tokens("The bridge", " opened in", " 1973.")


async def test_a_partial_stream_keeps_the_providers_prompt_count(metering):
    ex = answered(exchange(stream=True), prompt=57, completion=1)  # Anthropic's message_start
    await metering.on_request(ex)
    await metering.on_chunk(ex, Event.of({"type": "content_block_delta",
                                          "delta": {"type": "text_delta",
                                                    "text": "a much longer answer than one"}},
                                         "content_block_delta"))
    ex.flags.add("client_disconnected")
    await metering.on_complete(ex)
    (event,) = await stored(metering)
    assert event.input_tokens == 57
    assert event.output_tokens == tokens("a much longer answer than one")


async def test_a_stream_is_on_disk_before_its_final_event_is_sent(metering):
    ex = answered(exchange(stream=True), 10, 4)
    await metering.on_request(ex)
    await metering.on_chunk(ex, Event.of({"choices": [{"delta": {"content": "hi"}}]}))
    assert metering.writer.appended == 0
    await metering.on_chunk(ex, Event("[DONE]"))
    assert metering.writer.appended == 1  # written before [DONE] goes to the client
    await metering.on_complete(ex)
    assert metering.writer.appended == 1 and len(await stored(metering)) == 1


async def test_an_unpriced_model_costs_zero_flagged_and_named_at_start(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, "onyproxy.metering"):
        config = make_config({"providers": {"up": {"type": "openai",
                                                   "base_url": "http://x.test"}},
                              "models": {"mystery": MODELS["mystery"]}}, tmp_path=tmp_path)
        store = await open_store(config.storage.url)
        gateway = SimpleNamespace(config=config, store=store, metrics=None, readiness={})
        plugin = Plugin(MeteringConfig(), gateway)
        await plugin.start()
    try:
        assert "mystery-model-1" in caplog.text
        ex = answered(exchange({**CHAT, "model": "mystery"}), 10, 10, model="mystery-model-1")
        await plugin.on_complete(ex)
        (event,) = await stored(plugin)
        assert event.cost_usd == 0 and event.flags == ["unpriced"]
    finally:
        await plugin.stop()
        await store.close()


async def test_refusals_of_known_callers_are_recorded_unbilled_anonymous_ones_not(metering):
    refused = exchange(identity=Identity("acc_1", "key_1"), request_id="req_refused")
    refused.status, refused.error = 429, GatewayError(429, "rate_limit_error", "slow down",
                                                      code="rate_limit_exceeded")
    anonymous = exchange(request_id="req_anonymous")
    anonymous.status = 401
    for ex in (refused, anonymous):
        await metering.on_complete(ex)
    (event,) = await stored(metering)
    assert (event.request_id, event.status, event.error_type) == (
        "req_refused", 429, "rate_limit_exceeded")
    assert (event.billable, event.input_tokens, event.cost_usd, event.provider) == (
        False, 0, 0, "")


async def test_a_client_chosen_request_id_is_kept_but_not_the_key(metering):
    first = answered(exchange(headers={"x-request-id": "mine"}, request_id="mine"), 1, 1)
    second = answered(exchange(headers={"x-request-id": "mine"}, request_id="mine"), 1, 1)
    for ex in (first, second):
        await metering.on_complete(ex)
    events = await stored(metering)
    assert len(events) == 2 and {e.client_request_id for e in events} == {"mine"}


async def test_over_a_key_budget_is_insufficient_quota(metering):
    key = Identity("acc_1", "key_1", limits={"budget_usd": Decimal("0.01")})
    first = exchange(identity=key)
    await metering.on_request(first)  # nothing spent yet: admitted, estimate reserved
    answered(first, 2000, 600)  # costs 0.015
    await metering.on_complete(first)
    with pytest.raises(GatewayError) as refused:
        await metering.on_request(exchange(identity=key, request_id="req_2"))
    assert (refused.value.status, refused.value.type, refused.value.code) == (
        429, "insufficient_quota", "insufficient_quota")
    other_key = Identity("acc_1", "key_2", limits={"budget_usd": Decimal("0.01")})
    await metering.on_request(exchange(identity=other_key, request_id="req_3"))


async def test_an_account_budget_covers_all_its_keys(metering):
    store = metering.gateway.store
    from onyproxy.storage import Account

    await store.create_account(Account(id="acc_b", email="b@example.com", first_name="B",
                                       budget_usd=Decimal("0.01")))
    first = exchange(identity=Identity("acc_b", "key_1"))
    await metering.on_request(first)
    await metering.on_complete(answered(first, 2000, 600))
    with pytest.raises(GatewayError, match="this account"):
        await metering.on_request(exchange(identity=Identity("acc_b", "key_2")))


async def test_reservations_stop_concurrent_calls_before_they_start(metering):
    key = Identity("acc_1", "key_1", limits={"budget_usd": Decimal("0.004")})
    # Each reserves (prompt x 1.2 margin x 3 + 100 x 15) / 1M, about 0.0016 USD.
    admitted, refused = [], 0
    for n in range(10):
        ex = exchange(identity=key, request_id=f"req_{n}")
        try:
            await metering.on_request(ex)
        except GatewayError:
            refused += 1
        else:
            admitted.append(ex)
    assert len(admitted) == 3 and refused == 7  # 0.0016 x 2 < 0.004 <= 0.0016 x 3
    for ex in admitted:
        await metering.on_complete(ex)  # nothing spent (no provider): reservations released
    await metering.on_request(exchange(identity=key, request_id="req_after"))


async def test_a_failure_at_the_final_event_never_breaks_the_stream(metering, monkeypatch):
    ex = answered(exchange(stream=True), reported=False)
    await metering.on_request(ex)
    real_count = metering.tokenizer.count
    calls = []

    async def failing_once(texts):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("tokenizer trouble")
        return await real_count(texts)

    monkeypatch.setattr(metering.tokenizer, "count", failing_once)
    await metering.on_chunk(ex, Event.of({"choices": [{"delta": {"content": "hi"}}]}))
    await metering.on_chunk(ex, Event("[DONE]"))  # must not raise into the relay
    await metering.on_complete(ex)
    (event,) = await stored(metering)
    assert event.flags == ["estimated"] and event.output_tokens == tokens("hi")


async def test_the_gateway_closes_months_that_ended_past_the_grace_period(metering):
    from datetime import UTC, datetime

    from onyproxy.storage import UsageEvent

    store = metering.gateway.store
    january = datetime(2026, 1, 20, tzinfo=UTC)
    await store.insert_usage_events([UsageEvent(
        request_id="old", account_id="acc_1", key_id="key_1", model="claude-test",
        provider="up", input_tokens=10, output_tokens=2, cost_usd=Decimal("0.5"),
        created_at=january)])
    await metering.background.close_months(datetime(2026, 2, 1, 0, 30, tzinfo=UTC))
    assert await store.list_billing_records() == []  # still within the hour of grace
    await metering.background.close_months(datetime(2026, 2, 1, 2, 0, tzinfo=UTC))
    (record,) = await store.list_billing_records()
    assert (record.month, record.cost_usd, record.closed_at is not None) == (
        "2026-01", Decimal("0.5"), True)
