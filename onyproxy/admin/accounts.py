"""Admin endpoints for accounts.

- ``GET /admin/accounts?status=&limit=&offset=`` → ``{"data": [account, ...]}``
- ``POST /admin/accounts`` ``{email, name | first_name + last_name, phone, company,
  billing: {tax_id, address}, role, regions: ["tr", "eu"], budget_usd: "500"}`` → 201
  account (``budget_usd``: monthly, all its keys together; ``null`` lifts it)
- ``GET /admin/accounts/{id or email}`` → account
- ``PATCH /admin/accounts/{id or email}`` any of the fields above and ``status``
  (``active`` | ``suspended`` | ``deleted``); ``null`` clears phone, company, billing
- ``DELETE /admin/accounts/{id or email}`` → the account, soft-deleted (``status: deleted``;
  its data is erased after ``retention.deleted_accounts_days``)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from onyproxy.accounts import (
    create_account,
    get_account,
    set_account_status,
    update_account,
)
from onyproxy.admin.api import AdminCall, AdminRouter, bad_request, reply
from onyproxy.admin.records import account_record
from onyproxy.storage.base import ACCOUNT_STATUSES

FIELDS = ("email", "name", "first_name", "last_name", "phone", "company", "billing", "role",
          "regions", "budget_usd")
MAX_PAGE = 1000
MAX_OFFSET = 10**9  # SQLite and MongoDB take 64-bit offsets; beyond this is never a real page


def register(router: AdminRouter) -> None:
    router.get("/accounts", list_accounts)
    router.post("/accounts", create)
    router.get("/accounts/{account}", show)
    router.patch("/accounts/{account}", update)
    router.delete("/accounts/{account}", delete)


async def list_accounts(call: AdminCall) -> web.Response:
    query = call.request.query
    status = query.get("status") or None
    if status is not None and status not in ACCOUNT_STATUSES:
        raise bad_request("status", f"status must be one of {', '.join(ACCOUNT_STATUSES)}.")
    limit = _whole(query, "limit", 100, 1, MAX_PAGE)
    offset = _whole(query, "offset", 0, 0, MAX_OFFSET)
    accounts = await call.store.list_accounts(status=status, limit=limit,  # type: ignore[arg-type]
                                              offset=offset)
    return reply({"data": [account_record(a) for a in accounts]})


async def create(call: AdminCall) -> web.Response:
    body = await call.body(FIELDS)
    body.setdefault("email", "")  # so a missing email is reported as "email: is required"
    account = await create_account(call.store, **body)
    await call.audit("account.create", account.id, role=account.role)
    return reply(account_record(account), status=201)


async def show(call: AdminCall) -> web.Response:
    return reply(account_record(await get_account(call.store, call.param("account"))))


async def update(call: AdminCall) -> web.Response:
    body = await call.body((*FIELDS, "status"))
    account = await get_account(call.store, call.param("account"))
    status = body.pop("status", None)
    if body:
        account = await update_account(call.store, account.id, **body)
    if status is not None:
        account = await set_account_status(call.store, account.id, status)
    await call.audit("account.update", account.id,
                     fields=sorted([*body, *(["status"] if status is not None else [])]))
    call.forget_keys()  # a suspension or a role change applies to the account's keys
    return reply(account_record(account))


async def delete(call: AdminCall) -> web.Response:
    account = await get_account(call.store, call.param("account"))
    account = await set_account_status(call.store, account.id, "deleted")
    await call.audit("account.delete", account.id)
    call.forget_keys()
    return reply(account_record(account))


def _whole(query: Any, name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(name, f"{name} must be a whole number.") from None
    if value < low or (high is not None and value > high):
        limit = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise bad_request(name, f"{name} must be {limit}.")
    return value
