"""Budgets in a running gateway (auth + metering): 50 concurrent calls overspend by at most one
request's estimate, and a spent budget is a 429 ``insufficient_quota`` in each API's shape."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from onyproxy.accounts import create_account
from onyproxy.appkeys import GATEWAY
from onyproxy.exchange import Exchange, Identity
from onyproxy.keys import create_key
from onyproxy.storage import Store

PEPPER = "budget-pepper-0123456789abcdefghij"
# A dear mock model, so that a few words cost something: $1000 per 1M tokens either way.
DEAR = {"input": "1000", "output": "1000"}
CHAT = {"model": "mock-small", "max_tokens": 5,
        "messages": [{"role": "user", "content": "hello world"}]}
CALLS = {
    "openai": ("/v1/chat/completions", CHAT),
    "anthropic": ("/v1/messages", CHAT),
    "gemini": ("/v1beta/models/mock-small:generateContent",
               {"contents": [{"role": "user", "parts": [{"text": "hello world"}]}],
                "generationConfig": {"maxOutputTokens": 5}}),
}


def config() -> dict[str, Any]:
    return {
        "security": {"key_pepper": PEPPER},
        "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small",
                                               "price": DEAR}]}},
        "pipeline": [{"name": "auth", "failures": {"max": 1000, "delay_s": 0}},
                     {"name": "routing", "retries": 0, "timeout_s": 5},
                     {"name": "metering", "flush_interval_s": 0.05}],
    }


async def issue(store: Store, email: str, account_budget: str | None = None,
                **key: Any) -> tuple[str, str]:
    account = await create_account(store, email=email, name="Ada Lovelace")
    if account_budget is not None:
        await store.update_account(account.id, {"budget_usd": Decimal(account_budget)})
    issued = await create_key(store, account.id, pepper=PEPPER, **key)
    return issued.secret, issued.record.id


async def post(session: aiohttp.ClientSession, url: Any, body: dict[str, Any],
               secret: str) -> tuple[int, Any]:
    async with session.post(url, json=body, headers={"authorization": f"Bearer {secret}"}) as r:
        return r.status, await r.json()


async def settled_cost(store: Store, key_id: str, expected: int) -> Decimal:
    """Billable spend of the key once ``expected`` events are stored."""
    async with asyncio.timeout(10):
        while True:
            events = await store.list_usage_events(key_id=key_id)
            if len(events) >= expected:
                return sum((e.cost_usd for e in events if e.billable), Decimal(0))
            await asyncio.sleep(0.02)


async def test_fifty_concurrent_calls_overspend_by_at_most_one_estimate(gateway):
    server = await gateway(config())
    gw = server.app[GATEWAY]
    budget = Decimal("0.05")
    secret, key_id = await issue(gw.store, "ada@example.com", budget_usd=budget)
    async with aiohttp.ClientSession() as session:
        url = server.make_url("/v1/chat/completions")
        results = await asyncio.gather(*(post(session, url, CHAT, secret) for _ in range(50)))
    ok = [body for status, body in results if status == 200]
    refused = [body for status, body in results if status == 429]
    assert len(ok) + len(refused) == 50 and ok and refused
    assert {b["error"]["code"] for b in refused} == {"insufficient_quota"}
    spent = await settled_cost(gw.store, key_id, 50)
    one_call = Decimal(sum(b["usage"]["total_tokens"] for b in ok)) * 1000 / 1_000_000
    assert spent == one_call  # every answered call billed, at its exact cost
    metering = gw.pipeline.get("metering")
    probe = Exchange(request_id="probe", surface="openai", shape="openai", operation="chat",
                     path="/", headers={}, query={}, client_ip=None, user_agent=None,
                     body=CHAT, model="mock-small", identity=Identity("a", key_id))
    estimate = await metering._estimate(probe)
    assert spent <= budget + estimate


@pytest.mark.parametrize("surface", ["openai", "anthropic", "gemini"])
async def test_a_spent_budget_is_insufficient_quota_in_each_shape(gateway, surface):
    server = await gateway(config())
    gw = server.app[GATEWAY]
    secret, key_id = await issue(gw.store, "ada@example.com", budget_usd="0.001")
    path, body = CALLS[surface]
    async with aiohttp.ClientSession() as session:
        first = await post(session, server.make_url(path), body, secret)
        assert first[0] == 200  # admitted with nothing spent; costs about 0.006
        await settled_cost(gw.store, key_id, 1)
        status, error = await post(session, server.make_url(path), body, secret)
    assert status == 429
    if surface == "openai":
        assert error["error"]["type"] == error["error"]["code"] == "insufficient_quota"
    elif surface == "anthropic":
        assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
    else:
        assert error["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "monthly budget of this API key" in str(error)


async def test_an_account_budget_applies_to_all_its_keys_and_refusals_are_unbilled(gateway):
    server = await gateway(config())
    gw = server.app[GATEWAY]
    secret, key_id = await issue(gw.store, "corp@example.com", account_budget="0.001")
    account_id = (await gw.store.get_key(key_id)).account_id
    other = await create_key(gw.store, account_id, pepper=PEPPER, name="second")
    async with aiohttp.ClientSession() as session:
        url = server.make_url("/v1/chat/completions")
        assert (await post(session, url, CHAT, secret))[0] == 200
        await settled_cost(gw.store, key_id, 1)
        status, error = await post(session, url, CHAT, other.secret)
    assert status == 429 and "this account" in error["error"]["message"]
    async with asyncio.timeout(10):
        while len(events := await gw.store.list_usage_events(account_id=account_id)) < 2:
            await asyncio.sleep(0.02)
    refusal = next(e for e in events if e.status == 429)
    assert (refusal.billable, refusal.cost_usd, refusal.error_type) == (
        False, 0, "insufficient_quota")
