"""``onyproxy subject export|correct|erase|object|objections|resolve``: KVKK data-subject
rights against the configured store. Each action is written to the audit log as
``cli:<os user>`` with ``--reason`` as its "why"."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from onyproxy.accounts import get_account
from onyproxy.admin.records import account_record
from onyproxy.cli.store_session import (
    actor,
    note,
    print_fields,
    print_json,
    print_table,
    run_on_store,
)
from onyproxy.config import GatewayConfig
from onyproxy.privacy import subject
from onyproxy.storage import Store
from onyproxy.storage.privacy import OBJECTION_STATUSES, Objection


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("subject", help="KVKK data-subject rights: export, correct, "
                                                   "erase, object")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    export = _person(commands.add_parser("export", help="everything held about a person, JSON"))
    export.add_argument("--out", metavar="FILE", help="write to FILE (mode 0600), not stdout")
    export.set_defaults(func=lambda a: run_on_store(a, _export(a)))

    correct = _person(commands.add_parser("correct", help="correct one field, validated"))
    correct.add_argument("--field", required=True, choices=subject.CORRECTABLE)
    correct.add_argument("--value", required=True, help="the correct value ('' clears it)")
    _json_option(correct).set_defaults(func=lambda a: run_on_store(a, _correct(a)))

    erase = _person(commands.add_parser("erase", help="erase the person's data now"))
    _json_option(erase).set_defaults(func=lambda a: run_on_store(a, _erase(a)))

    objection = _person(commands.add_parser(
        "object", help="record an objection to an automated decision, for human review"),
        reason_required=True)
    objection.add_argument("--decision", help="the decision objected to, e.g. 'key suspended'")
    objection.add_argument("--event", metavar="EVENT_ID",
                           help="the automatic suspension contested (a security event id from "
                                "the export); default: the account's latest suspension")
    _json_option(objection).set_defaults(func=lambda a: run_on_store(a, _object(a)))

    listing = commands.add_parser("objections", help="list objections")
    listing.add_argument("--status", choices=OBJECTION_STATUSES)
    listing.add_argument("--account", metavar="ID_OR_EMAIL")
    _json_option(listing).set_defaults(func=lambda a: run_on_store(a, _objections(a)))

    resolve = commands.add_parser("resolve", help="record the review of an objection")
    resolve.add_argument("objection", metavar="OBJECTION_ID")
    resolve.add_argument("--outcome", required=True, choices=OBJECTION_STATUSES[1:])
    resolve.add_argument("--resolution", required=True, help="what was decided and why")
    _json_option(resolve).set_defaults(func=lambda a: run_on_store(a, _resolve(a)))


def _person(parser: argparse.ArgumentParser, *, reason_required: bool = False
            ) -> argparse.ArgumentParser:
    parser.add_argument("--account", required=True, metavar="ID_OR_EMAIL")
    parser.add_argument("--reason", required=reason_required,
                        help="why (recorded in the audit log)" if not reason_required
                        else "the person's objection, in their words")
    return parser


def _json_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _export(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        document = await subject.export(store, config, args.account, actor=actor(),
                                        reason=args.reason)
        text = json.dumps(document, indent=2, ensure_ascii=False)
        if args.out:
            _write_private(Path(args.out), text + "\n")
            note(f"Wrote the export of {document['account']['id']} to {args.out}.")
        else:
            print(text)
        return 0
    return work


def _write_private(path: Path, text: str) -> None:
    # Created 0600 from the start: the file holds one person's personal data.
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_text(text, encoding="utf-8")


def _correct(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        account = await subject.correct(store, args.account, args.field, args.value,
                                        actor=actor(), reason=args.reason)
        if args.json:
            print_json(account_record(account))
        else:
            note(f"Corrected {args.field} of account {account.id}.")
            print_fields(account_record(account))
        return 0
    return work


def _erase(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        done = await subject.erase(store, config, args.account, actor=actor(),
                                   reason=args.reason)
        if args.json:
            print_json(done)
            return 0
        note(f"Erased account {done['account_id']}: personal data replaced, "
             f"{done['keys_revoked']} keys revoked, IP and user agent removed from "
             f"{done['usage_events_anonymised']} usage events, client addresses from "
             f"{done['security_events_anonymised']} security events; billing figures kept.")
        if not done["notify"]:
            note("No provider received this person's requests: nobody to notify.")
            return 0
        note("Notify these recipients of the erasure:")
        print_table(("PROVIDER", "COUNTRY", "REQUESTS", "FIRST", "LAST"),
                    [(r["provider"], r["country"], r["requests"], r["first_at"], r["last_at"])
                     for r in done["notify"]])
        return 0
    return work


def _object(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        objection = await subject.object_to(store, args.account, args.reason, actor=actor(),
                                            decision=args.decision, event_id=args.event)
        if args.json:
            print_json(subject.objection_record(objection))
        elif objection.event_id:
            note(f"Recorded objection {objection.id} against {_contested(objection)} for "
                 f"human review.")
        else:
            note(f"Recorded objection {objection.id} for human review.")
        return 0
    return work


def _objections(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        account_id = None
        if args.account:
            account_id = (await get_account(store, args.account)).id
        found = await store.list_objections(account_id=account_id, status=args.status)
        if args.json:
            print_json([subject.objection_record(o) for o in found])
            return 0
        print_table(("ID", "ACCOUNT", "STATUS", "CREATED", "CONTESTS", "DECISION", "REASON"),
                    [(o.id, o.account_id, o.status, _minute(o.created_at), _contested(o),
                      o.decision, _short(o.reason)) for o in found])
        return 0
    return work


def _resolve(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        done = await subject.resolve(store, args.objection, args.outcome, args.resolution,
                                     actor=actor())
        if args.json:
            print_json(subject.objection_record(done))
        else:
            note(f"Objection {done.id}: {done.status}.")
        return 0
    return work


def _minute(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _contested(objection: Objection) -> str:
    """The suspension an objection contests: ``event sec_.. (key key_.., 2025-03-01 12:00)``."""
    o = objection
    if o.event_id is None:
        return "-"
    when = _minute(o.decided_at) if o.decided_at else "?"
    return f"event {o.event_id} (key {o.key_id}, {when})"


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
