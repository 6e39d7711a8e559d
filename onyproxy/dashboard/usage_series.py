"""The signed-in account's (or key's) usage over the last N days, as the usage page shows it.

The figures are :func:`onyproxy.billing.usage_report` rows (the same the CLI and the admin API
show: exact decimal sums from the database); this module only fills the days without traffic
with zeros, orders the models and builds the charts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from onyproxy.billing import ReportQuery, report_total, usage_report
from onyproxy.dashboard.charts import Chart, Series, bar_chart, column_chart, compact, dollars
from onyproxy.storage import Store, utcnow

RANGES = (7, 30, 90)
DEFAULT_DAYS = 30
Row = dict[str, Any]


@dataclass(frozen=True)
class UsageView:
    days: list[Row]  # one per calendar day (UTC), oldest first, zeros filled in
    models: list[Row]  # one per model, dearest first
    total: Row
    since: datetime


async def account_usage(store: Store, account_id: str, days: int,
                        now: datetime | None = None, key_id: str | None = None) -> UsageView:
    """Report rows per day and per model for ``days`` days up to today (UTC): the account's,
    or with ``key_id`` only that key's."""
    now = now or utcnow()
    since = datetime.combine((now - timedelta(days=days - 1)).date(), time(), now.tzinfo)
    by_day = {row["day"]: row for row in await usage_report(
        store, ReportQuery(by="day", account_id=account_id, key_id=key_id, since=since))}
    daily = [by_day.get(day) or _zero(day) for day in _dates(since, days)]
    models = await usage_report(store, ReportQuery(by="model", account_id=account_id,
                                                   key_id=key_id, since=since))
    models.sort(key=lambda r: (-Decimal(r["cost_usd"]), -r["requests"], r["model"] or ""))
    return UsageView(daily, models, report_total(daily), since)


def charts(view: UsageView) -> dict[str, Chart]:
    labels = [row["day"] for row in view.days]
    return {
        "tokens": column_chart("Tokens per day", labels, [
            Series("input", [r["prompt_tokens"] for r in view.days]),
            Series("output", [r["completion_tokens"] for r in view.days])], compact),
        "requests": column_chart("Requests per day", labels,
                                 [Series("requests", [r["requests"] for r in view.days])],
                                 compact, whole=True),
        "cost": column_chart("Cost per day (USD)", labels,
                             [Series("cost", [float(r["cost_usd"]) for r in view.days])],
                             dollars),
        "models": bar_chart("Cost per model (USD)", [r["model"] or "?" for r in view.models],
                            [float(r["cost_usd"]) for r in view.models], dollars),
    }


def usage_record(view: UsageView) -> dict[str, Any]:
    """The JSON behind the page (money as decimal strings)."""
    return {"since": view.since.date().isoformat(), "total": view.total,
            "days": view.days, "models": view.models}


def parse_days(value: str | None, default: int = DEFAULT_DAYS) -> int:
    """One of :data:`RANGES`; anything else gives ``default``."""
    try:
        days = int(value or "")
    except ValueError:
        return default
    return days if days in RANGES else default


def _zero(day: str) -> Row:
    return {"day": day, "requests": 0, "billed_requests": 0, "prompt_tokens": 0,
            "completion_tokens": 0, "cached_tokens": 0, "reasoning_tokens": 0, "cost_usd": "0"}


def _dates(since: datetime, days: int) -> list[str]:
    return [(since + timedelta(days=i)).date().isoformat() for i in range(days)]
