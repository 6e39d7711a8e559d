"""``onyproxy notify policy-change [--dry-run] [--json]``: mail every account that has not
accepted the privacy-policy version in force (``privacy.policy_version``) a notice, once per
version, through ``privacy.smtp``."""

from __future__ import annotations

import argparse

from onyproxy.cli.common import fail
from onyproxy.cli.store_session import actor, note, print_json, print_table, run_on_store
from onyproxy.config import GatewayConfig
from onyproxy.privacy.mail import MailError
from onyproxy.privacy.policy import notify_policy_change
from onyproxy.storage import Store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("notify", help="send notices to account holders")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    change = commands.add_parser("policy-change",
                                 help="mail accounts that have not accepted the current policy")
    change.add_argument("--dry-run", action="store_true", help="list who would get a notice")
    change.add_argument("--json", action="store_true", help="print JSON")
    change.set_defaults(func=lambda a: run_on_store(a, _policy_change(a)))


def _policy_change(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        try:
            result = await notify_policy_change(store, config, actor=actor(),
                                                dry_run=args.dry_run)
        except MailError as exc:
            fail(str(exc))
        if args.json:
            print_json(result)
        elif args.dry_run:
            note(f"Policy {result['version']}: {result['pending']} accounts have not accepted "
                 f"it; {result['already_notified']} were already notified. Would notify:")
            print_table(("ID", "EMAIL", "ACCEPTED"), [
                (a["id"], a["email"], a["accepted_version"]) for a in result["would_notify"]])
        else:
            note(f"Policy {result['version']}: notified {len(result['sent'])} accounts, "
                 f"{len(result['failed'])} failed, {result['already_notified']} were notified "
                 f"before.")
            for failure in result["failed"]:
                note(f"  {failure['id']}: {failure['error']}")
        return 1 if not args.dry_run and result["failed"] else 0
    return work
