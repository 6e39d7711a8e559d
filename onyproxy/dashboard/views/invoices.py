"""Invoices of the signed-in account, one per month, each downloadable as CSV (an owner key's
session only: they are the whole account's figures).

The figures come from :func:`onyproxy.billing.invoices` (the closed record of a month, or the
figures of an open month computed now) and the CSV from :func:`onyproxy.billing.invoices_csv`,
so the dashboard, the CLI and the admin API show the same numbers.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from onyproxy.billing import LOOKBACK_MONTHS, invoice_record, invoices, invoices_csv, month_of
from onyproxy.dashboard.pages import account_id, json_reply, page, render, store
from onyproxy.storage import BillingRecord, NotFoundError, Store, utcnow


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/invoices", invoices_page)
    router.add_get("/invoices/{month}.csv", invoice_csv)
    router.add_get("/api/invoices", invoices_json)


@page("owner")
async def invoices_page(request: web.Request) -> web.StreamResponse:
    found = await account_invoices(store(request), account_id(request))
    return render(request, "invoices.html", {"title": "Invoices", "invoices": found})


@page("owner")
async def invoices_json(request: web.Request) -> web.StreamResponse:
    found = await account_invoices(store(request), account_id(request))
    return json_reply({"data": [{**invoice_record(record, status),
                                 "csv": f"/ui/invoices/{record.month}.csv"}
                                for record, status in found]})


@page("owner")
async def invoice_csv(request: web.Request) -> web.StreamResponse:
    month = request.match_info["month"]
    found = [(r, s) for r, s in await account_invoices(store(request), account_id(request))
             if r.month == month]
    if not found:
        raise NotFoundError("invoice", month)
    return web.Response(text=invoices_csv(found), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="onyproxy-invoice-{month}.csv"'})


async def account_invoices(db: Store, account: str) -> list[tuple[BillingRecord, str]]:
    """The account's invoices, newest month first: every month with a billing record, and
    the recent months whose usage events are still kept (open, or not closed yet)."""
    months = {r.month for r in await db.list_billing_records(account_id=account)}
    moment = utcnow()
    for _ in range(LOOKBACK_MONTHS + 1):
        months.add(month_of(moment))
        moment = moment.replace(day=1) - timedelta(days=1)
    found = []
    for month in sorted(months, reverse=True):
        found += await invoices(db, month, account)
    return found
