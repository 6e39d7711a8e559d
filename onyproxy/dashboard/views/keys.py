"""The signed-in account's API keys: list, create (the secret shown once), revoke, and contest
an automatic suspension (recorded as an objection by :func:`onyproxy.privacy.subject.object_to`
for a person to review).

Only an owner key's session changes anything here; it sees every key of the account. A key it
creates is bounded by it (:func:`onyproxy.key_bounds.bound_by`): limits left empty in the form
are the signed-in key's, and none may exceed them. Any other key's session sees only itself.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiMapping

from onyproxy.accounts import ValidationError
from onyproxy.admin.records import key_record, parse_expiry, parse_models
from onyproxy.dashboard.audit import audit, revoke_with_created
from onyproxy.dashboard.pages import (
    account_id,
    gateway,
    json_reply,
    own_key_only,
    page,
    redirect,
    render,
    store,
    viewer_of,
)
from onyproxy.keys import create_key, key_is_usable
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
    return json_reply({"data": [key_record(k) for k in await _visible_keys(request)]})


@page("owner")
async def create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    viewer = viewer_of(request)
    assert viewer is not None
    try:
        issued = await create_key(store(request), account_id(request),
                                  pepper=gateway(request).config.security.key_pepper,
                                  creator=viewer.key, **key_limits(form))
    except ValidationError as exc:
        return await _page(request, error=f"{exc.field}: {exc.message}", status=400)
    await audit(request, "key.create", issued.record.id, account_id=account_id(request),
                created_by=issued.record.created_by)
    # Rendered straight away, never redirected: the secret exists only in this one answer.
    return await _page(request, issued=issued, status=201)


def key_limits(form: MultiMapping) -> dict[str, Any]:
    """The create form's fields as :func:`create_key` arguments (empty: not set)."""
    def text(name: str) -> str:
        return str(form.get(name, "")).strip()

    def whole(name: str) -> int | None:
        value = text(name)
        if value and not value.isdigit():
            raise ValidationError(name, "must be a whole number")
        return int(value) if value else None
    return {"name": text("name") or "default", "rpm": whole("rpm"), "tpm": whole("tpm"),
            "concurrent": whole("concurrent"), "budget_usd": text("budget_usd") or None,
            "models": parse_models(text("models")), "regions": text("regions") or None,
            "expires_at": parse_expiry(text("expires") or None, "expires_at")}


@page("owner")
async def revoke(request: web.Request) -> web.StreamResponse:
    key = await _own_key(request)
    await revoke_with_created(request, key)
    viewer = viewer_of(request)
    if viewer is not None and viewer.session.key_id == key.id:
        return redirect("/ui/signin")  # the session was opened with this key: it ends here
    return redirect("/ui/keys")


@page("owner")
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


async def _visible_keys(request: web.Request) -> list[ApiKey]:
    """Every key of the account for an owner key's session; only itself for any other."""
    keys = await store(request).list_keys(account_id(request))
    own = own_key_only(request)
    return keys if own is None else [k for k in keys if k.id == own]


async def _page(request: web.Request, *, issued=None, error: str | None = None,
                notice: str | None = None, status: int = 200) -> web.Response:
    keys = await _visible_keys(request)
    viewer = viewer_of(request)
    rows = [{"key": k, "usable": key_is_usable(k),
             "current": viewer is not None and viewer.session.key_id == k.id} for k in keys]
    return render(request, "keys.html", {"title": "API keys", "rows": rows, "issued": issued,
                                         "error": error, "notice": notice}, status=status)
