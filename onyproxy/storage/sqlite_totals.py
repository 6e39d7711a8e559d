"""SQL for :meth:`Store.usage_totals` on SQLite, and the exact decimal sum it needs.

Money is stored as decimal text; SQLite's own ``sum()`` would turn it into binary floats, so
the connection gets a ``decimal_sum`` aggregate that adds :class:`~decimal.Decimal` values in
Python and answers decimal text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from onyproxy.storage.base import UsageTotal, check_dimensions
from onyproxy.storage.sqlite_rows import to_text

#: The column (or expression) behind each dimension; times are ISO text, so a day is a prefix.
_DIMENSIONS = {"account": "account_id", "key": "key_id", "model": "model",
               "provider": "provider", "day": "substr(created_at, 1, 10)"}

_SUMS = (
    "count(*) AS requests, coalesce(sum(billable), 0) AS billed_requests, "
    "coalesce(sum(input_tokens), 0) AS input_tokens, "
    "coalesce(sum(output_tokens), 0) AS output_tokens, "
    "coalesce(sum(cached_tokens), 0) AS cached_tokens, "
    "coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens, "
    "decimal_sum(cost_usd) AS cost_usd"
)


class DecimalSum:
    """``decimal_sum(text)``: an exact sum of decimal text, as decimal text."""

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: str | None) -> None:
        if value is not None:
            self.total += Decimal(value)

    def finalize(self) -> str:
        return str(self.total)


def register_functions(conn: sqlite3.Connection) -> None:
    """Make ``decimal_sum`` available on ``conn``."""
    conn.create_aggregate("decimal_sum", 1, DecimalSum)


def totals_query(group_by: Sequence[str], *, account_id: str | None, key_id: str | None,
                 since: datetime | None, until: datetime | None,
                 billable_only: bool) -> tuple[str, list[Any]]:
    """The SELECT and its arguments for one :meth:`Store.usage_totals` call."""
    check_dimensions(group_by)
    clauses: list[str] = []
    args: list[Any] = []
    for clause, value in (
        ("account_id = ?", account_id),
        ("key_id = ?", key_id),
        ("created_at >= ?", to_text(since)),
        ("created_at < ?", to_text(until)),
    ):
        if value is not None:
            clauses.append(clause)
            args.append(value)
    if billable_only:
        clauses.append("billable = 1")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    columns = [f"{_DIMENSIONS[d]} AS g{i}" for i, d in enumerate(group_by)]
    names = [f"g{i}" for i in range(len(group_by))]
    select = ", ".join([*columns, _SUMS])
    if names:
        listed = ", ".join(names)
        sql = f"SELECT {select} FROM usage_events {where} GROUP BY {listed} ORDER BY {listed}"
        return sql, args
    # Without grouping, no matching row still yields one row of zeros; HAVING drops it.
    return f"SELECT {select} FROM usage_events {where} HAVING count(*) > 0", args


def total_from(row: sqlite3.Row, group_by: Sequence[str]) -> UsageTotal:
    """The total one result row of :func:`totals_query` holds."""
    return UsageTotal(
        group={d: row[f"g{i}"] for i, d in enumerate(group_by)},
        requests=row["requests"], billed_requests=row["billed_requests"],
        input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
        cached_tokens=row["cached_tokens"], reasoning_tokens=row["reasoning_tokens"],
        cost_usd=Decimal(row["cost_usd"]),
    )
