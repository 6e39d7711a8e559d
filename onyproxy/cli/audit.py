"""``onyproxy audit verify [--expect-head SEQ:HASH] [--json]``: check the audit log's hash
chain with the audit key, and against every head in the anchor file. Exit status 0 when
intact, 1 with the first bad entry when not."""

from __future__ import annotations

import argparse

from onyproxy.cli.common import fail
from onyproxy.cli.store_session import note, print_json, run_on_store
from onyproxy.config import GatewayConfig
from onyproxy.privacy.anchor import anchor_path, read_anchors
from onyproxy.privacy.audit import parse_head, verify_audit
from onyproxy.storage import Store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help="check the audit log's integrity")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = commands.add_parser("verify", help="check the hash chain of the audit log")
    verify.add_argument("--expect-head", metavar="SEQ:HASH",
                        help="a head printed by an earlier run: it must still be in the chain")
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    head = None
    if args.expect_head:
        try:
            head = parse_head(args.expect_head)
        except ValueError as exc:
            fail(f"--expect-head: {exc}")
    return run_on_store(args, _work(args, head))


def _work(args: argparse.Namespace, head: tuple[int, str] | None):
    async def work(config: GatewayConfig, store: Store) -> int:
        anchors = read_anchors(anchor_path(config))
        check = await verify_audit(store, key=store.audit_key, expect_head=head,
                                   anchors=anchors)
        if args.json:
            print_json({**check.as_json(), "anchors_checked": len(anchors)})
        elif check.ok:
            print(f"ok: {check.entries} entries, head {check.head_seq}:{check.head_hash} "
                  f"({len(anchors)} anchored heads checked)")
        else:
            bad = check.entry
            where = "" if bad is None else \
                f"; first bad entry {bad.id} ({bad.action} by {bad.actor} at " \
                f"{bad.at.isoformat()})"
            note(f"onyproxy: the audit log was tampered with after {check.entries} good "
                 f"entries: {check.problem}{where}")
        return 0 if check.ok else 1
    return work
