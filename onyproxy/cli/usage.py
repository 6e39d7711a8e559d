"""``onyproxy usage report``: requests, tokens and cost from the usage events in the store.

Rows are grouped by the client-facing model name unless ``--by`` says otherwise; the time range
is UTC, ``--from`` inclusive, ``--to`` inclusive of that whole day (default: this month so far).
Refused requests count as requests with zero tokens; ``billed_requests`` counts those a
provider answered.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from onyproxy.accounts import get_account
from onyproxy.billing import (
    ReportQuery,
    month_bounds,
    month_of,
    parse_time,
    report_json,
    report_total,
    usage_report,
)
from onyproxy.cli.common import fail
from onyproxy.cli.store_session import print_json, print_table, run_on_store
from onyproxy.config import GatewayConfig
from onyproxy.storage import Store

BY = ("model", "day", "key", "provider")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("usage", help="usage reports (requests, tokens, cost)")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    report = commands.add_parser("report", help="usage summed per model, day, key or provider")
    report.add_argument("--account", metavar="ID_OR_EMAIL", help="only this account")
    report.add_argument("--key", metavar="KEY_ID", help="only this API key")
    report.add_argument("--from", dest="since", metavar="DATE",
                        help="YYYY-MM-DD or ISO time, UTC, inclusive (default: start of month)")
    report.add_argument("--to", dest="until", metavar="DATE",
                        help="YYYY-MM-DD (that day included) or ISO time (default: now)")
    report.add_argument("--by", choices=BY, default="model",
                        help="group rows by (default: model, the name clients ask for)")
    report.add_argument("--json", action="store_true", help="print JSON")
    report.set_defaults(func=lambda a: run_on_store(a, _report(a)))


def time_range(since: str | None, until: str | None) -> tuple[datetime, datetime | None]:
    """The range the options give; a wrong date exits with a message."""
    try:
        start = parse_time(since) if since else month_bounds(month_of(datetime.now(UTC)))[0]
        end = parse_time(until, end=True) if until else None
    except ValueError as exc:
        fail(str(exc))
        raise AssertionError("unreachable") from None
    return start, end


def _report(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        since, until = time_range(args.since, args.until)
        account_id = (await get_account(store, args.account)).id if args.account else None
        query = ReportQuery(by=args.by, account_id=account_id, key_id=args.key, since=since,
                            until=until)
        rows = await usage_report(store, query)
        if args.json:
            print_json(report_json(query, rows))
        else:
            _print_rows(args.by, rows)
        return 0
    return work


def _print_rows(by: str, rows: list[dict[str, Any]]) -> None:
    columns = ("requests", "prompt_tokens", "completion_tokens", "cost_usd")
    table = [(row[by] or "-", *(row[c] for c in columns)) for row in rows]
    total = report_total(rows)
    table.append(("TOTAL", *(total[c] for c in columns)))
    print_table((by.upper(), "REQUESTS", "PROMPT_TOKENS", "COMPLETION_TOKENS", "COST_USD"),
                table)

