"""Admin endpoint for usage reports (the same figures as ``onyproxy usage report``).

- ``GET /admin/usage?account=&key=&from=&to=&by=`` → ``{by, account, key, from, to, rows,
  total}``; ``by`` is ``model`` (default: the name clients ask for), ``day``, ``key``,
  ``provider`` or ``account``; ``from``/``to`` are ``YYYY-MM-DD`` (``to`` includes that day)
  or ISO 8601 times, UTC (default: this month so far). Money is a decimal string.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from onyproxy.accounts import get_account
from onyproxy.admin.api import AdminCall, AdminRouter, bad_request, reply
from onyproxy.billing import (
    REPORT_DIMENSIONS,
    ReportQuery,
    month_bounds,
    month_of,
    parse_time,
    report_json,
    usage_report,
)


def register(router: AdminRouter) -> None:
    router.get("/usage", report)


async def report(call: AdminCall) -> web.Response:
    query = call.request.query
    by = query.get("by") or "model"
    if by not in REPORT_DIMENSIONS:
        raise bad_request("by", f"by must be one of {', '.join(REPORT_DIMENSIONS)}.")
    account = query.get("account")
    account_id = (await get_account(call.store, account)).id if account else None
    since = _time(query.get("from"), "from") or month_bounds(month_of(datetime.now(UTC)))[0]
    report_query = ReportQuery(by=by, account_id=account_id, key_id=query.get("key") or None,
                               since=since, until=_time(query.get("to"), "to"))
    return reply(report_json(report_query, await usage_report(call.store, report_query)))


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return parse_time(value, end=name == "to")
    except ValueError as exc:
        raise bad_request(name, f"{name}: {exc}.") from None
