"""Usage reports and monthly billing records (invoices), as the CLI and the admin API show them.

A month (``YYYY-MM``, UTC) is *open* while it runs and for a grace period after it ends (so
records still waiting in a gateway's spool get in); its figures are then computed from the
usage events on every request. Then it is *closed*: the metering plugin writes one
:class:`~onyproxy.storage.BillingRecord` per account (totals and one line per client-facing
model) with ``closed_at`` set, and a closed record is never changed again. Billing records are
kept ``retention.billing_years`` (10 years); usage events only ``usage_events_days``.

Only billable events count on invoices (a provider answered); usage reports show every event,
refused requests included, with their zero tokens. Money stays :class:`~decimal.Decimal` and
travels as decimal strings in JSON and CSV.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from onyproxy.storage import BillingLine, BillingRecord, Store, UsageTotal

REPORT_DIMENSIONS = ("model", "day", "key", "provider", "account")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
LOOKBACK_MONTHS = 3  # months checked for closing: usage events live about that long


def parse_month(text: str) -> str:
    """``YYYY-MM``, checked; ``ValueError`` otherwise."""
    if not _MONTH.match(text):
        raise ValueError(f"expected a month as YYYY-MM, got {text!r}")
    return text


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """First instant of ``month`` and of the month after it (UTC)."""
    year, number = map(int, parse_month(month).split("-"))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def month_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def months_due(now: datetime, grace: timedelta) -> list[str]:
    """Recent months that ended at least ``grace`` ago, oldest first."""
    months = []
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    for _ in range(LOOKBACK_MONTHS):
        start = (start - timedelta(days=1)).replace(day=1)
        if now >= month_bounds(month_of(start))[1] + grace:
            months.append(month_of(start))
    return sorted(months)


def parse_time(text: str, *, end: bool = False) -> datetime:
    """``YYYY-MM-DD`` (UTC; as an ``end``, the day is included) or an ISO 8601 time."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None and len(text) == 10:
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return moment + timedelta(days=1) if end else moment
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected a date YYYY-MM-DD or an ISO 8601 time, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- usage reports ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportQuery:
    """What ``usage report`` asks: filters, a half-open time range and one grouping."""

    by: str = "model"
    account_id: str | None = None
    key_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def usage_report(store: Store, query: ReportQuery) -> list[dict[str, Any]]:
    """One row per value of ``query.by``: requests, tokens and cost."""
    if query.by not in REPORT_DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(REPORT_DIMENSIONS)}")
    totals = await store.usage_totals(group_by=[query.by], account_id=query.account_id,
                                      key_id=query.key_id, since=query.since,
                                      until=query.until)
    return [report_row(query.by, t) for t in totals]


def report_json(query: ReportQuery, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A report as the CLI (``--json``) and the admin API give it."""
    return {"by": query.by, "account": query.account_id, "key": query.key_id,
            "from": _timestamp(query.since), "to": _timestamp(query.until), "rows": rows,
            "total": report_total(rows)}


def report_row(by: str, total: UsageTotal) -> dict[str, Any]:
    return {by: total.group[by], "requests": total.requests,
            "billed_requests": total.billed_requests, "prompt_tokens": total.input_tokens,
            "completion_tokens": total.output_tokens, "cached_tokens": total.cached_tokens,
            "reasoning_tokens": total.reasoning_tokens, "cost_usd": str(total.cost_usd)}


def report_total(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The sum of report rows (money summed as decimals)."""
    sums: dict[str, Any] = {name: sum(r[name] for r in rows) for name in
                            ("requests", "billed_requests", "prompt_tokens",
                             "completion_tokens", "cached_tokens", "reasoning_tokens")}
    sums["cost_usd"] = str(sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0)))
    return sums


# --- billing records --------------------------------------------------------------------------
async def compute_records(store: Store, month: str,
                          account_id: str | None = None) -> list[BillingRecord]:
    """The month's records from its billable usage events, one per account (events without
    an account, from a gateway running without auth, belong to no invoice)."""
    start, end = month_bounds(month)
    totals = await store.usage_totals(group_by=["account", "model"], account_id=account_id,
                                      since=start, until=end, billable_only=True)
    records: dict[str, BillingRecord] = {}
    for total in totals:
        account = total.group["account"]
        if account is None:
            continue
        record = records.setdefault(account, BillingRecord(account_id=account, month=month))
        record.lines.append(BillingLine(
            model=str(total.group["model"]), requests=total.billed_requests,
            input_tokens=total.input_tokens, output_tokens=total.output_tokens,
            cached_tokens=total.cached_tokens, cost_usd=total.cost_usd))
        record.requests += total.billed_requests
        record.input_tokens += total.input_tokens
        record.output_tokens += total.output_tokens
        record.cached_tokens += total.cached_tokens
        record.cost_usd += total.cost_usd
    return list(records.values())


async def close_month(store: Store, month: str, now: datetime) -> int:
    """Write the final records of ``month`` for every account not yet closed; idempotent
    (gateways and workers may race to it: they write the same figures). Returns how many
    records were written."""
    closed = {r.account_id for r in await store.list_billing_records(month=month)
              if r.closed_at is not None}
    written = 0
    for record in await compute_records(store, month):
        if record.account_id in closed:
            continue
        record.closed_at = record.updated_at = now
        await store.upsert_billing_record(record)
        written += 1
    return written


async def invoices(store: Store, month: str,
                   account_id: str | None = None) -> list[tuple[BillingRecord, str]]:
    """``(record, "closed" | "open")`` for each account with billable usage in ``month``:
    the closed record when there is one, else figures computed now from the usage events."""
    found: dict[str, tuple[BillingRecord, str]] = {
        r.account_id: (r, "closed")
        for r in await store.list_billing_records(account_id=account_id, month=month)
        if r.closed_at is not None}
    for record in await compute_records(store, month, account_id):
        found.setdefault(record.account_id, (record, "open"))
    return [found[a] for a in sorted(found)]


def invoice_record(record: BillingRecord, status: str) -> dict[str, Any]:
    """The JSON of an invoice (money as decimal strings)."""
    return {
        "account_id": record.account_id, "month": record.month, "status": status,
        "requests": record.requests, "prompt_tokens": record.input_tokens,
        "completion_tokens": record.output_tokens, "cached_tokens": record.cached_tokens,
        "cost_usd": str(record.cost_usd),
        "closed_at": _timestamp(record.closed_at),
        "lines": [{"model": line.model, "requests": line.requests,
                   "prompt_tokens": line.input_tokens,
                   "completion_tokens": line.output_tokens,
                   "cached_tokens": line.cached_tokens, "cost_usd": str(line.cost_usd)}
                  for line in record.lines],
    }


CSV_COLUMNS = ("month", "account_id", "status", "model", "requests", "prompt_tokens",
               "completion_tokens", "cached_tokens", "cost_usd")


def invoices_csv(found: Sequence[tuple[BillingRecord, str]]) -> str:
    """One CSV row per invoice line, then a ``TOTAL`` row per account."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record, status in found:
        for line in record.lines:
            writer.writerow((record.month, record.account_id, status, line.model, line.requests,
                             line.input_tokens, line.output_tokens, line.cached_tokens,
                             line.cost_usd))
        writer.writerow((record.month, record.account_id, status, "TOTAL", record.requests,
                         record.input_tokens, record.output_tokens, record.cached_tokens,
                         record.cost_usd))
    return out.getvalue()


def _timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
