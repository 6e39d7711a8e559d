"""``onyproxy quickstart``: a local account and an API key in one step, for the first call.

Only for the embedded SQLite store, where the one running this owns the gateway: it makes the
account (``you@example.com`` unless ``--email``) if it is missing, issues a new key named
``quickstart`` (an owner key: it manages the account in the dashboard) and prints its secret
once, alone on stdout::

    export ONYPROXY_KEY=$(onyproxy quickstart)

Each run issues a new key; no key is ever printed twice. On MongoDB (a shared, real
deployment) it refuses and points at ``accounts create`` and ``keys create``.
"""

from __future__ import annotations

import argparse

from onyproxy.accounts import create_account
from onyproxy.cli.common import fail, load_or_exit
from onyproxy.cli.keys import show_issued
from onyproxy.cli.store_session import audit, note, run_on_store
from onyproxy.config import GatewayConfig
from onyproxy.keys import create_key
from onyproxy.storage import Store, url_scheme

DEFAULT_EMAIL = "you@example.com"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart", help="local SQLite only: an account and a key for a first call")
    parser.add_argument("--email", default=DEFAULT_EMAIL,
                        help=f"the local account (default {DEFAULT_EMAIL}; created if missing)")
    parser.add_argument("--json", action="store_true", help="print JSON (secret under 'key')")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    if url_scheme(config.storage.url) != "sqlite":
        fail("quickstart is for the local SQLite store only; on a shared database create an "
             "account and a key explicitly: onyproxy accounts create --email E --name N, then "
             "onyproxy keys create --account E")
    return run_on_store(args, _quickstart(args))


def _quickstart(args: argparse.Namespace):
    async def work(config: GatewayConfig, store: Store) -> int:
        account = await store.get_account_by_email(args.email.strip().lower())
        if account is None:
            account = await create_account(store, email=args.email, name="Quickstart User")
            await audit(store, "account.create", account.id, role=account.role,
                        via="quickstart")
            note(f"Created the local account {account.email} ({account.id}).")
        elif account.status != "active":
            fail(f"the account {account.email} is {account.status}; use another --email")
        # The one running quickstart owns the local gateway: its key manages the account.
        issued = await create_key(store, account.id, pepper=config.security.key_pepper,
                                  name="quickstart", owner=True)
        await audit(store, "key.create", issued.record.id, account_id=account.id,
                    via="quickstart", owner=True)
        show_issued(issued, account, args.json, "Created")
        if not args.json:
            note("Use it as 'Authorization: Bearer <key>' (any OpenAI, Anthropic or Gemini "
                 "SDK's api_key). Revoke it with: onyproxy keys revoke " + issued.record.id)
        return 0
    return work
