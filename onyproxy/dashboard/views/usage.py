"""Usage of the signed-in account: tokens, requests and cost per day and per model. A
read-only session (a key without the owner role) sees only its own key's usage."""

from __future__ import annotations

from aiohttp import web

from onyproxy.dashboard.consent import PREFS_COOKIE, remember_pref
from onyproxy.dashboard.pages import (
    account_id,
    json_reply,
    own_key_only,
    page,
    render,
    secure_cookies,
    store,
)
from onyproxy.dashboard.usage_series import RANGES, account_usage, charts, parse_days, usage_record


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/usage", usage_page)
    router.add_get("/api/usage", usage_json)


@page("account")
async def usage_page(request: web.Request) -> web.StreamResponse:
    days = _days(request)
    view = await account_usage(store(request), account_id(request), days,
                               key_id=own_key_only(request))
    response = render(request, "usage.html", {"title": "Usage", "view": view, "days": days,
                                              "ranges": RANGES, "charts": charts(view)})
    if "days" in request.query:
        remember_pref(request, response, f"days={days}", secure=secure_cookies(request))
    return response


@page("account")
async def usage_json(request: web.Request) -> web.StreamResponse:
    view = await account_usage(store(request), account_id(request), _days(request),
                               key_id=own_key_only(request))
    return json_reply(usage_record(view))


def _days(request: web.Request) -> int:
    """``?days=`` when given, else the remembered preference (functional cookies only)."""
    if "days" in request.query:
        return parse_days(request.query["days"])
    pref = request.cookies.get(PREFS_COOKIE, "")
    return parse_days(pref.removeprefix("days=")) if pref.startswith("days=") else parse_days(None)
