"""``onyproxy invoices list|show|export|close``: monthly billing records per account.

A month's invoice is its closed billing record (written by the gateway after the month ended,
kept ``retention.billing_years``), or, while the month is open, the figures computed now from
the usage events (``status: open``). ``close`` writes the final records at once, e.g. when no
gateway ran over the month's end.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from onyproxy import billing
from onyproxy.accounts import get_account
from onyproxy.cli.common import fail
from onyproxy.cli.store_session import (
    audit,
    note,
    print_fields,
    print_json,
    print_table,
    run_on_store,
)
from onyproxy.config import GatewayConfig
from onyproxy.storage import Store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("invoices", help="monthly billing records per account")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = _common(commands.add_parser("list", help="one line per account"))
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=lambda a: run_on_store(a, _list(a)))
    show = _common(commands.add_parser("show", help="an account's invoice, line by line"),
                   account_required=True)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=lambda a: run_on_store(a, _show(a)))
    export = _common(commands.add_parser("export", help="every invoice line, for accounting"))
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.set_defaults(func=lambda a: run_on_store(a, _export(a)))
    close = commands.add_parser("close", help="write the final records of a past month now")
    close.add_argument("--month", required=True, type=_month, metavar="YYYY-MM")
    close.set_defaults(func=lambda a: run_on_store(a, _close(a)))


def _month(text: str) -> str:
    try:
        return billing.parse_month(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common(parser: argparse.ArgumentParser,
            account_required: bool = False) -> argparse.ArgumentParser:
    parser.add_argument("--month", type=_month, metavar="YYYY-MM",
                        default=billing.month_of(datetime.now(UTC)),
                        help="the month, UTC (default: this month)")
    parser.add_argument("--account", metavar="ID_OR_EMAIL", required=account_required)
    return parser


async def _found(store: Store, args: argparse.Namespace):
    account_id = (await get_account(store, args.account)).id if args.account else None
    return await billing.invoices(store, args.month, account_id)


def _list(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        found = await _found(store, args)
        if args.json:
            print_json([billing.invoice_record(r, s) for r, s in found])
            return 0
        print_table(("MONTH", "ACCOUNT", "STATUS", "REQUESTS", "PROMPT_TOKENS",
                     "COMPLETION_TOKENS", "COST_USD"),
                    [(r.month, r.account_id, s, r.requests, r.input_tokens, r.output_tokens,
                      r.cost_usd) for r, s in found])
        return 0
    return work


def _show(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        found = await _found(store, args)
        if not found:
            fail(f"no billable usage for {args.account} in {args.month}")
        record, status = found[0]
        data = billing.invoice_record(record, status)
        if args.json:
            print_json(data)
            return 0
        print_fields({k: v for k, v in data.items() if k != "lines"})
        print()
        print_table(("MODEL", "REQUESTS", "PROMPT_TOKENS", "COMPLETION_TOKENS",
                     "CACHED_TOKENS", "COST_USD"),
                    [(line["model"], line["requests"], line["prompt_tokens"],
                      line["completion_tokens"], line["cached_tokens"], line["cost_usd"])
                     for line in data["lines"]])
        return 0
    return work


def _export(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        found = await _found(store, args)
        if args.format == "json":
            print_json([billing.invoice_record(r, s) for r, s in found])
        else:
            sys.stdout.write(billing.invoices_csv(found))
        return 0
    return work


def _close(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        now = datetime.now(UTC)
        if billing.month_bounds(args.month)[1] > now:
            fail(f"{args.month} has not ended yet")
        written = await billing.close_month(store, args.month, now)
        await audit(store, "billing.close", args.month, records=written)
        note(f"Closed {args.month}: {written} billing record(s) written.")
        return 0
    return work
