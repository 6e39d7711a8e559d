"""``onyproxy accounts create|list|show|update|delete``: accounts, against the configured store.

Every write is appended to the audit log as ``cli:<os user>``.
"""

from __future__ import annotations

import argparse
from typing import Any

from onyproxy.accounts import create_account, get_account, set_account_status, update_account
from onyproxy.admin.records import account_record
from onyproxy.cli.store_session import (
    audit,
    note,
    print_fields,
    print_json,
    print_table,
    run_on_store,
)
from onyproxy.config import GatewayConfig
from onyproxy.storage import Account, Store
from onyproxy.storage.base import ACCOUNT_STATUSES

PAGE = 500


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("accounts", help="create, list, show, update, delete accounts")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = commands.add_parser("create", help="create an account")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True, help="first and last name")
    _contact_options(create)
    create.add_argument("--admin", action="store_true", help="may use the admin API")
    _json_option(create).set_defaults(func=lambda a: run_on_store(a, _create(a)))

    listing = commands.add_parser("list", help="list accounts")
    listing.add_argument("--status", choices=ACCOUNT_STATUSES)
    _json_option(listing).set_defaults(func=lambda a: run_on_store(a, _list(a)))

    show = commands.add_parser("show", help="show one account")
    show.add_argument("account", metavar="ID_OR_EMAIL")
    _json_option(show).set_defaults(func=lambda a: run_on_store(a, _show(a)))

    update = commands.add_parser("update", help="change an account ('' clears a field)")
    update.add_argument("account", metavar="ID_OR_EMAIL")
    update.add_argument("--email")
    update.add_argument("--name")
    _contact_options(update)
    update.add_argument("--role", choices=("user", "admin"))
    update.add_argument("--status", choices=ACCOUNT_STATUSES)
    _json_option(update).set_defaults(func=lambda a: run_on_store(a, _update(a)))

    delete = commands.add_parser("delete", help="delete an account (soft: status deleted)")
    delete.add_argument("account", metavar="ID_OR_EMAIL")
    _json_option(delete).set_defaults(func=lambda a: run_on_store(a, _delete(a)))


def _contact_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phone", help="E.164, e.g. +905321234567")
    parser.add_argument("--company")
    parser.add_argument("--tax-id", help="corporate billing: tax id (needs --company)")
    parser.add_argument("--address", help="corporate billing: invoice address")
    parser.add_argument("--regions", metavar="A,B",
                        help="only providers in these regions, e.g. tr,eu ('' lifts it)")
    parser.add_argument("--budget-usd", metavar="USD",
                        help="monthly budget of all its keys together, e.g. 500 ('' lifts it)")


def _json_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _billing(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.tax_id is None and args.address is None:
        return None
    return {"tax_id": args.tax_id, "address": args.address}


def _create(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        account = await create_account(
            store, email=args.email, name=args.name, phone=args.phone, company=args.company,
            billing=_billing(args), role="admin" if args.admin else "user",
            regions=args.regions, budget_usd=args.budget_usd)
        await audit(store, "account.create", account.id, role=account.role)
        _show_account(account, args.json, f"Created account {account.id} ({account.email}).")
        return 0
    return work


def _list(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        accounts: list[Account] = []
        while page := await store.list_accounts(status=args.status, limit=PAGE,
                                                offset=len(accounts)):
            accounts += page
        if args.json:
            print_json([account_record(a) for a in accounts])
        else:
            print_table(("ID", "EMAIL", "NAME", "ROLE", "STATUS", "COMPANY", "CREATED"),
                        [(a.id, a.email, a.name, a.role, a.status, a.company,
                          a.created_at.strftime("%Y-%m-%d")) for a in accounts])
        return 0
    return work


def _show(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        _show_account(await get_account(store, args.account), args.json)
        return 0
    return work


def _update(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        account = await get_account(store, args.account)
        changes = {name: getattr(args, name) for name in ("email", "name", "phone", "company",
                                                          "role", "regions", "budget_usd")
                   if getattr(args, name) is not None}
        billing = _billing(args)
        if billing is not None:
            current = account.billing
            changes["billing"] = {
                "tax_id": args.tax_id if args.tax_id is not None else current and current.tax_id,
                "address": args.address if args.address is not None
                else current and current.address}
        if changes:
            account = await update_account(store, account.id, **changes)
        if args.status is not None:
            account = await set_account_status(store, account.id, args.status)
        fields = sorted([*changes, *(["status"] if args.status else [])])
        if fields:
            await audit(store, "account.update", account.id, fields=fields)
        _show_account(account, args.json, f"Updated account {account.id}: "
                                          f"{', '.join(fields) or 'nothing to change'}.")
        return 0
    return work


def _delete(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        account = await get_account(store, args.account)
        account = await set_account_status(store, account.id, "deleted")
        await audit(store, "account.delete", account.id)
        days = config.retention.deleted_accounts_days
        _show_account(account, args.json, f"Deleted account {account.id} ({account.email}); "
                                          f"its keys stop working within seconds, its data "
                                          f"is erased after {days} days.")
        return 0
    return work


def _show_account(account: Account, as_json: bool, message: str | None = None) -> None:
    if as_json:
        print_json(account_record(account))
        return
    if message:
        note(message)
    print_fields(account_record(account))
