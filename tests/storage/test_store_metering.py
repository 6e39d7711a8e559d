"""The store contract for metering: event details, usage totals, budgets, billing lines.

Runs once on SQLite and once on MongoDB, like ``test_store_contract``.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from onyproxy.storage import (
    Account,
    BillingLine,
    BillingRecord,
    Store,
    UsageEvent,
    new_id,
    open_store,
)
from onyproxy.storage.sqlite_schema import MIGRATIONS, migrate

T0 = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


def event(request_id: str, account_id: str | None = "acc_a", key_id: str | None = "key_1",
          at: datetime = T0, model: str = "gpt-4o", provider: str = "openai",
          **fields: object) -> UsageEvent:
    return UsageEvent(request_id=request_id, account_id=account_id, key_id=key_id,
                      model=model, provider=provider, created_at=at,
                      **fields)  # type: ignore[arg-type]


async def test_usage_event_with_every_metering_field_reads_back_identically(
        store: Store) -> None:
    made = event("r1", input_tokens=1200, output_tokens=345, cost_usd=Decimal("0.012345"),
                 status=200, latency_ms=812, ip="203.0.113.9", user_agent="openai-python/1.50",
                 surface="anthropic", provider_model="gpt-4o-2024-08-06", attempts=2,
                 error_type=None, cached_tokens=1024, reasoning_tokens=100, ttft_ms=95,
                 streamed=True, flags=["partial", "estimated"], billable=True,
                 client_request_id="client-abc",
                 server_tool_uses={"web_search": 3, "web_fetch": 1})
    refused = event("r2", status=429, error_type="insufficient_quota", billable=False,
                    provider="", ttft_ms=None)
    await store.insert_usage_events([made, refused])
    assert await store.list_usage_events() == [made, refused]


async def test_usage_totals_group_by_model_with_exact_decimal_cost(store: Store) -> None:
    # 0.1 + 0.2 is 0.30000000000000004 in binary floating point; invoices must say 0.3.
    await store.insert_usage_events([
        event("r1", input_tokens=10, output_tokens=5, cost_usd=Decimal("0.1")),
        event("r2", input_tokens=20, output_tokens=7, cost_usd=Decimal("0.2"),
              cached_tokens=8, reasoning_tokens=3),
        event("r3", model="claude", input_tokens=1, output_tokens=1,
              cost_usd=Decimal("0.000001")),
    ])
    totals = await store.usage_totals(group_by=["model"])
    assert [(t.group, t.requests, t.input_tokens, t.output_tokens, t.cost_usd)
            for t in totals] == [
        ({"model": "claude"}, 1, 1, 1, Decimal("0.000001")),
        ({"model": "gpt-4o"}, 2, 30, 12, Decimal("0.3")),
    ]
    assert (totals[1].cached_tokens, totals[1].reasoning_tokens) == (8, 3)


async def test_usage_totals_filter_by_account_key_time_and_billable(store: Store) -> None:
    await store.insert_usage_events([
        event("r1", cost_usd=Decimal("1")),
        event("r2", key_id="key_2", at=T0 + timedelta(hours=1), cost_usd=Decimal("2")),
        event("r3", account_id="acc_b", key_id="key_3", at=T0 + timedelta(hours=2),
              cost_usd=Decimal("4")),
        event("r4", at=T0 + timedelta(hours=3), status=429, billable=False),
    ])

    async def cost(**query: object) -> list[tuple[int, int, Decimal]]:
        found = await store.usage_totals(group_by=[], **query)  # type: ignore[arg-type]
        return [(t.requests, t.billed_requests, t.cost_usd) for t in found]

    assert await cost() == [(4, 3, Decimal("7"))]
    assert await cost(account_id="acc_a") == [(3, 2, Decimal("3"))]
    assert await cost(key_id="key_1") == [(2, 1, Decimal("1"))]
    assert await cost(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3)) == [
        (2, 2, Decimal("6"))]
    assert await cost(billable_only=True, account_id="acc_a") == [(2, 2, Decimal("3"))]
    assert await cost(account_id="acc_nobody") == []


async def test_usage_totals_group_by_several_dimensions_missing_values_first(
        store: Store) -> None:
    await store.insert_usage_events([
        event("r1", key_id="key_2", at=T0 + timedelta(days=1)),
        event("r2", key_id=None, account_id=None),
        event("r3", key_id="key_1"),
        event("r4", key_id="key_1", at=T0 + timedelta(days=1), provider="anthropic"),
    ])
    by_key_day = await store.usage_totals(group_by=["key", "day"])
    assert [(t.group["key"], t.group["day"], t.requests) for t in by_key_day] == [
        (None, "2025-03-01", 1), ("key_1", "2025-03-01", 1), ("key_1", "2025-03-02", 1),
        ("key_2", "2025-03-02", 1)]
    by_account_provider = await store.usage_totals(group_by=["account", "provider"])
    assert [(t.group["account"], t.group["provider"], t.requests)
            for t in by_account_provider] == [
        (None, "openai", 1), ("acc_a", "anthropic", 1), ("acc_a", "openai", 2)]


async def test_usage_totals_refuse_an_unknown_dimension(store: Store) -> None:
    with pytest.raises(ValueError, match="colour"):
        await store.usage_totals(group_by=["colour"])


async def test_account_budget_reads_back_and_can_be_changed_or_cleared(store: Store) -> None:
    created = await store.create_account(Account(
        id=new_id("acc"), email="ada@example.com", first_name="Ada",
        budget_usd=Decimal("25.50")))
    assert created.budget_usd == Decimal("25.50")
    updated = await store.update_account(created.id, {"budget_usd": Decimal("0.005")})
    assert updated.budget_usd == Decimal("0.005")
    cleared = await store.update_account(created.id, {"budget_usd": None})
    assert cleared.budget_usd is None
    assert (await store.get_account(created.id)).budget_usd is None  # type: ignore[union-attr]


async def test_billing_record_with_lines_and_closing_time_reads_back(store: Store) -> None:
    lines = [BillingLine("claude", 2, 300, 40, 0, Decimal("0.0021")),
             BillingLine("gpt-4o", 1, 100, 20, 64, Decimal("0.000450"))]
    record = BillingRecord("acc_a", "2025-03", 3, 400, 60, Decimal("0.002550"), T0,
                           cached_tokens=64, lines=lines, closed_at=T0 + timedelta(days=31))
    await store.upsert_billing_record(record)
    assert await store.list_billing_records() == [record]
    replaced = BillingRecord("acc_a", "2025-03", 1, 1, 1, Decimal("1"), T0)
    await store.upsert_billing_record(replaced)
    assert await store.list_billing_records() == [replaced]


# SQLite only: a database of the first schema gains the new columns with their defaults.
async def test_sqlite_events_written_before_metering_columns_read_with_defaults(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:1])
    conn.execute(
        "INSERT INTO usage_events VALUES ('old', 'acc_a', NULL, 'gpt-4o', 'openai', 5, 6, "
        "'0.5', 200, 10, NULL, NULL, '2025-03-01T12:00:00.000+00:00')")
    conn.close()
    store = await open_store(f"sqlite:///{path}")
    try:
        (old,) = await store.list_usage_events()
        assert (old.flags, old.billable, old.cached_tokens, old.surface) == ([], True, 0, "")
        assert old.server_tool_uses == {}
        (total,) = await store.usage_totals(group_by=["model"], billable_only=True)
        assert (total.requests, total.cost_usd) == (1, Decimal("0.5"))
    finally:
        await store.close()
