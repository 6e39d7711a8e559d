"""``onyproxy keys create|list|revoke|rotate|reinstate``: API keys, against the configured store.

``create`` and ``rotate`` print the secret exactly once: alone on stdout (so
``KEY=$(onyproxy keys create ...)`` works), or under ``"key"`` with ``--json``; what it is
goes to stderr. Only its HMAC is stored. Every write is appended to the audit log.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from onyproxy.accounts import get_account
from onyproxy.admin.records import (
    issued_record,
    key_record,
    parse_expiry,
    parse_models,
    suspension_details,
)
from onyproxy.cli.store_session import (
    audit,
    note,
    print_json,
    print_table,
    run_on_store,
)
from onyproxy.config import GatewayConfig
from onyproxy.keys import (
    IssuedKey,
    create_key,
    key_is_usable,
    reinstate_key,
    revoke_created_by,
    revoke_key,
    rotate_key,
)
from onyproxy.storage import Account, ApiKey, NotFoundError, Store

PAGE = 500


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="create, list, revoke, rotate, reinstate API "
                                                "keys")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = commands.add_parser("create", help="issue a key (the secret is printed once)")
    create.add_argument("--account", required=True, metavar="EMAIL_OR_ID")
    create.add_argument("--name", default="default")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--concurrent", type=int, help="requests in flight")
    create.add_argument("--budget-usd", metavar="USD", help="monthly budget, e.g. 25.00")
    create.add_argument("--models", metavar="A,B", help="only these model names")
    create.add_argument("--regions", metavar="A,B",
                        help="only providers in these regions, e.g. tr,eu")
    create.add_argument("--expires", metavar="DATE",
                        help="YYYY-MM-DD (stops working at 00:00 UTC that day) or ISO 8601")
    create.add_argument("--owner", action="store_true",
                        help="its dashboard session may create and revoke keys, change the "
                             "account and erase it (other keys' sessions are read-only)")
    create.add_argument("--json", action="store_true", help="print JSON (secret under 'key')")
    create.set_defaults(func=lambda a: run_on_store(a, _create(a)))

    listing = commands.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--account", metavar="EMAIL_OR_ID")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=lambda a: run_on_store(a, _list(a)))

    revoke = commands.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("key_id", metavar="KEY_ID")
    revoke.add_argument("--json", action="store_true", help="print JSON")
    revoke.set_defaults(func=lambda a: run_on_store(a, _revoke(a)))

    rotate = commands.add_parser("rotate", help="replace a key: new secret, same settings")
    rotate.add_argument("key_id", metavar="KEY_ID")
    rotate.add_argument("--json", action="store_true", help="print JSON (secret under 'key')")
    rotate.set_defaults(func=lambda a: run_on_store(a, _rotate(a)))

    reinstate = commands.add_parser("reinstate", help="lift a key's suspension (e.g. one the "
                                                      "security monitor made)")
    reinstate.add_argument("key_id", metavar="KEY_ID")
    reinstate.add_argument("--json", action="store_true", help="print JSON")
    reinstate.set_defaults(func=lambda a: run_on_store(a, _reinstate(a)))


def _create(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        account = await get_account(store, args.account)
        issued = await create_key(
            store, account.id, pepper=config.security.key_pepper, name=args.name,
            rpm=args.rpm, tpm=args.tpm, concurrent=args.concurrent, budget_usd=args.budget_usd,
            models=parse_models(args.models), expires_at=parse_expiry(args.expires, "expires"),
            regions=args.regions, owner=args.owner)
        await audit(store, "key.create", issued.record.id, account_id=account.id,
                    owner=args.owner)
        show_issued(issued, account, args.json, "Created")
        return 0
    return work


def _list(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        if args.account:
            accounts = [await get_account(store, args.account)]
        else:
            accounts = []
            while page := await store.list_accounts(limit=PAGE, offset=len(accounts)):
                accounts += page
        emails = {a.id: a.email for a in accounts}
        keys: list[ApiKey] = []
        for account in accounts:
            keys += await store.list_keys(account.id)
        if args.json:
            print_json([key_record(k) for k in keys])
            return 0
        print_table(("ID", "PREFIX", "NAME", "ACCOUNT", "ROLE", "STATUS", "LAST USED",
                     "EXPIRES"),
                    [(k.id, k.prefix + "…", k.name, emails[k.account_id],
                      "owner" if k.owner else "-", key_status(k), _day(k.last_used_at),
                      _day(k.expires_at)) for k in keys])
        return 0
    return work


def _revoke(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        key = await _existing(store, args.key_id)
        key = await revoke_key(store, key.id)
        await audit(store, "key.revoke", key.id, account_id=key.account_id)
        created = await revoke_created_by(store, key)
        for child in created:
            await audit(store, "key.revoke", child.id, account_id=child.account_id,
                        created_by=child.created_by)
        if args.json:
            print_json(key_record(key))
        else:
            also = f" and {len(created)} key(s) created with it" if created else ""
            note(f"Revoked key {key.id} ({key.prefix}…){also}; gateways refuse it within "
                 f"seconds.")
        return 0
    return work


def _rotate(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        old = await _existing(store, args.key_id)
        issued = await rotate_key(store, old.id, pepper=config.security.key_pepper)
        await audit(store, "key.rotate", old.id, account_id=old.account_id,
                    new_key_id=issued.record.id)
        account = await get_account(store, old.account_id)
        show_issued(issued, account, args.json, f"Revoked {old.id} and created")
        return 0
    return work


def _reinstate(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        old = await _existing(store, args.key_id)
        key = await reinstate_key(store, old.id)
        if old.suspended:
            await audit(store, "key.reinstate", key.id, **suspension_details(old))
        if args.json:
            print_json(key_record(key))
        elif old.suspended:
            note(f"Reinstated key {key.id} ({key.prefix}…), suspended {_day(old.suspended_at)} "
                 f"UTC by {old.suspended_by}; gateways accept it again within seconds"
                 f"{'' if key_is_usable(key) else ' (but it is ' + key_status(key) + ')'}.")
        else:
            note(f"Key {key.id} ({key.prefix}…) is not suspended; nothing to do.")
        return 0
    return work


def show_issued(issued: IssuedKey, account: Account, as_json: bool, verb: str) -> None:
    """Print a new key's secret, once: alone on stdout, or under "key" in JSON."""
    if as_json:
        print_json(issued_record(issued))
        return
    record = issued.record
    limits = ["owner"] if record.owner else []
    limits += [f"{name} {value}" for name in ("rpm", "tpm", "concurrent", "budget_usd")
               if (value := getattr(record, name)) is not None]
    if record.models is not None:
        limits.append(f"models {','.join(record.models)}")
    if record.regions is not None:
        limits.append(f"regions {','.join(record.regions)}")
    if record.expires_at is not None:
        limits.append(f"expires {_day(record.expires_at)} UTC")
    note(f"{verb} key {record.id} ({record.name!r}) for {account.email}"
         f"{'; ' + ', '.join(limits) if limits else ''}. The secret below is shown only this "
         f"once and stored only as a hash: keep it now.")
    print(issued.secret)


async def _existing(store: Store, key_id: str) -> ApiKey:
    key = await store.get_key(key_id)
    if key is None:
        raise NotFoundError("key", key_id)
    return key


def key_status(key: ApiKey) -> str:
    if key.revoked:
        return "revoked"
    if key.suspended:
        return "suspended"
    return "active" if key_is_usable(key) else "expired"


def _day(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d %H:%M")
