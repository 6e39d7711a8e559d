"""Admin endpoints for monthly invoices (the same figures as ``onyproxy invoices``).

- ``GET /admin/invoices?month=YYYY-MM&account=`` → ``{"month", "data": [invoice, ...]}``
  (default month: this one); with ``format=csv`` the export as ``text/csv`` instead
- ``GET /admin/invoices/{month}/{account}`` → one invoice with its lines per model, or 404
- ``POST /admin/invoices/{month}/close`` → ``{"month", "records"}``: writes the final records
  of a month that has ended (the gateway does it by itself after ``close_after_h``)

An invoice's ``status`` is ``closed`` (final, kept ``retention.billing_years``) or ``open``
(computed now from the usage events). Money is a decimal string.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from onyproxy import billing
from onyproxy.accounts import get_account
from onyproxy.admin.api import AdminCall, AdminRouter, bad_request, reply
from onyproxy.errors import GatewayError


def register(router: AdminRouter) -> None:
    router.get("/invoices", list_invoices)
    router.get("/invoices/{month}/{account}", show)
    router.post("/invoices/{month}/close", close)


async def list_invoices(call: AdminCall) -> web.Response:
    query = call.request.query
    month = _month(query.get("month") or billing.month_of(datetime.now(UTC)))
    account = query.get("account")
    account_id = (await get_account(call.store, account)).id if account else None
    found = await billing.invoices(call.store, month, account_id)
    fmt = query.get("format") or "json"
    if fmt == "csv":
        return web.Response(text=billing.invoices_csv(found), content_type="text/csv",
                            headers={"content-disposition":
                                     f'attachment; filename="invoices-{month}.csv"'})
    if fmt != "json":
        raise bad_request("format", "format must be json or csv.")
    return reply({"month": month, "data": [billing.invoice_record(r, s) for r, s in found]})


async def show(call: AdminCall) -> web.Response:
    month = _month(call.param("month"))
    account = await get_account(call.store, call.param("account"))
    found = await billing.invoices(call.store, month, account.id)
    if not found:
        raise GatewayError(404, "invalid_request_error",
                           f"No billable usage for account '{account.id}' in {month}.",
                           code="not_found")
    record, status = found[0]
    return reply(billing.invoice_record(record, status))


async def close(call: AdminCall) -> web.Response:
    month = _month(call.param("month"))
    now = datetime.now(UTC)
    if billing.month_bounds(month)[1] > now:
        raise bad_request("month", f"{month} has not ended yet.")
    written = await billing.close_month(call.store, month, now)
    await call.audit("billing.close", month, records=written)
    return reply({"month": month, "records": written})


def _month(text: str) -> str:
    try:
        return billing.parse_month(text)
    except ValueError as exc:
        raise bad_request("month", f"month: {exc}.") from None
