"""The signed-in account's API keys: list, create (the secret shown once), revoke, and contest
an automatic suspension (recorded as an objection by :func:`onyproxy.privacy.subject.object_to`
for a person to review)."""

from __future__ import annotations

from aiohttp import web

from onyproxy.accounts import ValidationError
from onyproxy.admin.records import key_record, parse_expiry
from onyproxy.dashboard.audit import audit, forget_keys
from onyproxy.dashboard.pages import (
    account_id,
    gateway,
    json_reply,
    page,
    redirect,
    render,
    store,
    viewer_of,
)
from onyproxy.keys import create_key, key_is_usable, revoke_key
from onyproxy.privacy import subject
from onyproxy.storage import ApiKey, NotFoundError


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/keys", keys_page)
    router.add_post("/keys", create)
    router.add_post("/keys/{key}/revoke", revoke)
    router.add_post("/keys/{key}/object", contest)
    router.add_get("/api/keys", keys_json)


@page("account")
async def keys_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@page("account")
async def keys_json(request: web.Request) -> web.StreamResponse:
    keys = await store(request).list_keys(account_id(request))
    return json_reply({"data": [key_record(k) for k in keys]})


@page("account")
async def create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", "")).strip() or "default"
    try:
        issued = await create_key(store(request), account_id(request),
                                  pepper=gateway(request).config.security.key_pepper,
                                  name=name, expires_at=parse_expiry(form.get("expires") or None,
                                                                     "expires"))
    except ValidationError as exc:
        return await _page(request, error=f"{exc.field}: {exc.message}", status=400)
    await audit(request, "key.create", issued.record.id, account_id=account_id(request))
    # Rendered straight away, never redirected: the secret exists only in this one answer.
    return await _page(request, issued=issued, status=201)


@page("account")
async def revoke(request: web.Request) -> web.StreamResponse:
    key = await _own_key(request)
    await revoke_key(store(request), key.id)
    await audit(request, "key.revoke", key.id, account_id=key.account_id)
    forget_keys(request)
    viewer = viewer_of(request)
    if viewer is not None and viewer.session.key_id == key.id:
        return redirect("/ui/signin")  # the session was opened with this key: it ends here
    return redirect("/ui/keys")


@page("account")
async def contest(request: web.Request) -> web.StreamResponse:
    key = await _own_key(request)
    if not key.suspended:
        return await _page(request, error="Only a suspended key can be contested.", status=400)
    form = await request.post()
    viewer = viewer_of(request)
    assert viewer is not None
    try:
        await subject.object_to(
            store(request), key.account_id, str(form.get("reason", "")), actor=viewer.actor,
            decision=f"key {key.id} suspended by {key.suspended_by}: {key.suspended_reason}",
            key_id=key.id)
    except ValidationError as exc:
        return await _page(request, error=f"{exc.field}: {exc.message}", status=400)
    return await _page(request, notice="Your objection was recorded; a person will review the "
                                       "suspension and answer you.")


async def _own_key(request: web.Request) -> ApiKey:
    key = await store(request).get_key(request.match_info["key"])
    if key is None or key.account_id != account_id(request):
        raise NotFoundError("key", request.match_info["key"])
    return key


async def _page(request: web.Request, *, issued=None, error: str | None = None,
                notice: str | None = None, status: int = 200) -> web.Response:
    keys = await store(request).list_keys(account_id(request))
    viewer = viewer_of(request)
    rows = [{"key": k, "usable": key_is_usable(k),
             "current": viewer is not None and viewer.session.key_id == k.id} for k in keys]
    return render(request, "keys.html", {"title": "API keys", "rows": rows, "issued": issued,
                                         "error": error, "notice": notice}, status=status)
