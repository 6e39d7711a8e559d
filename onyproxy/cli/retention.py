"""``onyproxy retention run [--dry-run] [--json]``: one retention pass now.

The gateway runs the same pass in the background (``retention.job_interval_s``); this command
is for cron when that is off, and for seeing with ``--dry-run`` what a pass would delete.
"""

from __future__ import annotations

import argparse

from onyproxy.cli.store_session import audit, note, print_json, print_table, run_on_store
from onyproxy.config import GatewayConfig
from onyproxy.retention import run_retention
from onyproxy.storage import Store

KINDS = (("usage_events", "usage events"), ("security_events", "security events"),
         ("accounts", "deleted accounts"), ("keys", "their keys"),
         ("billing_records", "billing records"))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("retention", help="delete what is past its retention period")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = commands.add_parser("run", help="one retention pass now")
    run.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    run.add_argument("--json", action="store_true", help="print JSON")
    run.set_defaults(func=lambda a: run_on_store(a, _run(a)))


def _run(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        report = await run_retention(store, config.retention, dry_run=args.dry_run)
        data = report.as_json()
        if not args.dry_run:
            await audit(store, "retention.run", None,
                        **{kind: data[kind] for kind, _ in KINDS})
        if args.json:
            print_json(data)
            return 0
        verb = "would delete" if args.dry_run else "deleted"
        print_table(("KIND", verb.upper()), [(label, data[kind]) for kind, label in KINDS])
        limits = data["cutoffs"]
        note(f"Usage and security events before {limits['usage_events_before']}, accounts "
             f"deleted before {limits['accounts_deleted_before']} (with their keys and "
             f"security events), billing months before {limits['billing_months_before']}.")
        return 0
    return work
