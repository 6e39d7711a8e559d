"""Admin endpoints for API keys. A key's secret appears once, under ``"key"``, in the answer
that creates or rotates it; no other answer, log line or record holds it.

- ``GET /admin/keys?account=ID_OR_EMAIL&include_revoked=true`` → ``{"data": [key, ...]}``
  (every account's keys without ``account``)
- ``POST /admin/keys`` ``{account, name, rpm, tpm, concurrent, budget_usd, models,
  expires_at, regions, owner}`` → 201 key with ``"key"`` (``owner: true``: its dashboard
  session may manage the account; see docs/dashboard.md)
- ``GET /admin/keys/{id}`` → key
- ``POST /admin/keys/{id}/revoke`` → the key, revoked (idempotent), with the keys created in
  its dashboard sessions
- ``POST /admin/keys/{id}/rotate`` → 201 the new key with ``"key"``; the old one is revoked
- ``POST /admin/keys/{id}/reinstate`` → the key, its suspension lifted (idempotent)
"""

from __future__ import annotations

from aiohttp import web

from onyproxy.accounts import get_account
from onyproxy.admin.api import AdminCall, AdminRouter, bad_request, reply
from onyproxy.admin.records import issued_record, key_record, parse_expiry, suspension_details
from onyproxy.keys import create_key, reinstate_key, revoke_created_by, revoke_key, rotate_key
from onyproxy.storage import ApiKey, NotFoundError

FIELDS = ("account", "name", "rpm", "tpm", "concurrent", "budget_usd", "models", "expires_at",
          "regions", "owner")
PAGE = 500


def register(router: AdminRouter) -> None:
    router.get("/keys", list_keys)
    router.post("/keys", create)
    router.get("/keys/{key}", show)
    router.post("/keys/{key}/revoke", revoke)
    router.post("/keys/{key}/rotate", rotate)
    router.post("/keys/{key}/reinstate", reinstate)


async def list_keys(call: AdminCall) -> web.Response:
    query = call.request.query
    include_revoked = query.get("include_revoked", "true").lower() not in ("false", "0", "no")
    if query.get("account"):
        accounts = [await get_account(call.store, query["account"])]
    else:
        accounts = await _all_accounts(call)
    keys: list[ApiKey] = []
    for account in accounts:
        keys += await call.store.list_keys(account.id, include_revoked=include_revoked)
    return reply({"data": [key_record(k) for k in keys]})


async def create(call: AdminCall) -> web.Response:
    body = await call.body(FIELDS)
    ident = body.pop("account", None)
    if not isinstance(ident, str) or not ident.strip():
        raise bad_request("account", "account is required: the id or email of the account.")
    account = await get_account(call.store, ident.strip())
    expires_at = parse_expiry(body.pop("expires_at", None))
    if "name" in body and body["name"] is None:
        del body["name"]
    issued = await create_key(call.store, account.id, pepper=call.pepper,
                              expires_at=expires_at, **body)
    await call.audit("key.create", issued.record.id, account_id=account.id,
                     owner=issued.record.owner)
    return reply(issued_record(issued), status=201)


async def show(call: AdminCall) -> web.Response:
    return reply(key_record(await _key(call)))


async def revoke(call: AdminCall) -> web.Response:
    key = await revoke_key(call.store, (await _key(call)).id)
    await call.audit("key.revoke", key.id, account_id=key.account_id)
    for child in await revoke_created_by(call.store, key):
        await call.audit("key.revoke", child.id, account_id=child.account_id,
                         created_by=child.created_by)
    call.forget_keys()
    return reply(key_record(key))


async def rotate(call: AdminCall) -> web.Response:
    old = await _key(call)
    issued = await rotate_key(call.store, old.id, pepper=call.pepper)
    await call.audit("key.rotate", old.id, account_id=old.account_id,
                     new_key_id=issued.record.id)
    call.forget_keys()
    return reply(issued_record(issued), status=201)


async def reinstate(call: AdminCall) -> web.Response:
    old = await _key(call)
    key = await reinstate_key(call.store, old.id)
    if old.suspended:
        await call.audit("key.reinstate", key.id, **suspension_details(old))
    call.forget_keys()
    return reply(key_record(key))


async def _key(call: AdminCall) -> ApiKey:
    key_id = call.param("key")
    key = await call.store.get_key(key_id)
    if key is None:
        raise NotFoundError("key", key_id)
    return key


async def _all_accounts(call: AdminCall) -> list:
    accounts: list = []
    while page := await call.store.list_accounts(limit=PAGE, offset=len(accounts)):
        accounts += page
    return accounts

