"""Monthly billing records and usage reports (``onyproxy.billing``), on SQLite and MongoDB:
per-model lines with exact decimal totals, closing a month once and for good, open months
computed live, CSV export, and refused requests visible in reports but never invoiced."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from storage import conftest as store_fixtures

from onyproxy import billing
from onyproxy.storage import Store, UsageEvent

# The store contract suite's fixtures: each test runs on SQLite and on MongoDB.
backend, mongo_url, store = (store_fixtures.backend, store_fixtures.mongo_url,
                             store_fixtures.store)
MARCH = datetime(2026, 3, 10, 12, tzinfo=UTC)


def event(request_id: str, account: str | None = "acc_a", model: str = "gpt-4o",
          at: datetime = MARCH, cost: str = "0.1", billable: bool = True,
          key: str = "key_1", provider: str = "openai") -> UsageEvent:
    return UsageEvent(request_id=request_id, account_id=account, key_id=key, model=model,
                      provider=provider if billable else "", input_tokens=100 if billable else 0,
                      output_tokens=10 if billable else 0, cached_tokens=5 if billable else 0,
                      cost_usd=Decimal(cost) if billable else Decimal(0),
                      status=200 if billable else 429, billable=billable, created_at=at)


async def seed(store: Store) -> None:
    await store.insert_usage_events([
        event("r1"), event("r2", cost="0.2"), event("r3", model="claude", cost="0.7"),
        event("r4", account="acc_b", cost="1.05"),
        event("r5", billable=False),  # a refused request: shown in reports, never billed
        event("r6", at=MARCH.replace(month=4)),  # next month
        event("r7", account=None),  # no auth: belongs to no invoice
    ])


async def test_month_records_have_a_line_per_model_and_exact_totals(store):
    await seed(store)
    records = {r.account_id: r for r in await billing.compute_records(store, "2026-03")}
    assert set(records) == {"acc_a", "acc_b"}
    a = records["acc_a"]
    assert [(line.model, line.requests, line.cost_usd) for line in a.lines] == [
        ("claude", 1, Decimal("0.7")), ("gpt-4o", 2, Decimal("0.3"))]
    assert (a.requests, a.input_tokens, a.output_tokens, a.cached_tokens, a.cost_usd) == (
        3, 300, 30, 15, Decimal("1.0"))


async def test_closing_writes_final_records_once_and_never_changes_them(store):
    await seed(store)
    closed_at = datetime(2026, 4, 1, 2, tzinfo=UTC)
    assert await billing.close_month(store, "2026-03", closed_at) == 2
    await store.insert_usage_events([event("late", cost="5")])  # arrives after closing
    assert await billing.close_month(store, "2026-03", closed_at + timedelta(hours=1)) == 0
    found = await billing.invoices(store, "2026-03", "acc_a")
    assert [(r.cost_usd, status, r.closed_at) for r, status in found] == [
        (Decimal("1.0"), "closed", closed_at)]


async def test_an_open_month_is_computed_from_the_events(store):
    await seed(store)
    ((record, status),) = await billing.invoices(store, "2026-04")
    assert (record.account_id, record.cost_usd, status) == ("acc_a", Decimal("0.1"), "open")
    assert await billing.invoices(store, "2026-05") == []


async def test_usage_report_shows_refusals_with_zero_tokens(store):
    await seed(store)
    start, end = billing.month_bounds("2026-03")
    rows = await billing.usage_report(store, billing.ReportQuery(
        by="model", account_id="acc_a", since=start, until=end))
    gpt = next(r for r in rows if r["model"] == "gpt-4o")
    assert (gpt["requests"], gpt["billed_requests"], gpt["prompt_tokens"],
            gpt["completion_tokens"], gpt["cost_usd"]) == (3, 2, 200, 20, "0.3")
    total = billing.report_total(rows)
    assert (total["requests"], total["cost_usd"]) == (4, "1.0")
    by_provider = await billing.usage_report(store, billing.ReportQuery(
        by="provider", since=start, until=end))
    assert [r["provider"] for r in by_provider] == ["", "openai"]


def test_invoice_csv_has_a_row_per_line_and_a_total_per_account():
    record = billing.BillingRecord("acc_a", "2026-03", 3, 300, 30, Decimal("1.0"),
                                   cached_tokens=15, lines=[
                                       billing.BillingLine("claude", 1, 100, 10, 5,
                                                           Decimal("0.7")),
                                       billing.BillingLine("gpt-4o", 2, 200, 20, 10,
                                                           Decimal("0.3"))])
    rows = list(csv.DictReader(io.StringIO(billing.invoices_csv([(record, "closed")]))))
    assert [(r["model"], r["requests"], r["cost_usd"]) for r in rows] == [
        ("claude", "1", "0.7"), ("gpt-4o", "2", "0.3"), ("TOTAL", "3", "1.0")]
    assert billing.invoice_record(record, "closed")["lines"][1]["prompt_tokens"] == 200


@pytest.mark.parametrize(("now", "due"), [
    (datetime(2026, 4, 1, 0, 30, tzinfo=UTC), ["2026-01", "2026-02"]),
    (datetime(2026, 4, 1, 1, 0, tzinfo=UTC), ["2026-01", "2026-02", "2026-03"]),
    (datetime(2026, 1, 15, tzinfo=UTC), ["2025-10", "2025-11", "2025-12"]),
])
def test_months_are_due_for_closing_after_the_grace_period(now, due):
    assert billing.months_due(now, timedelta(hours=1)) == due


def test_month_and_time_parsing():
    assert billing.month_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC),
                                               datetime(2027, 1, 1, tzinfo=UTC))
    assert billing.parse_time("2026-03-31", end=True) == datetime(2026, 4, 1, tzinfo=UTC)
    assert billing.parse_time("2026-03-31T10:00:00Z") == datetime(2026, 3, 31, 10,
                                                                  tzinfo=UTC)
    for wrong in ("2026-13", "26-01", "March"):
        with pytest.raises(ValueError):
            billing.parse_month(wrong)
