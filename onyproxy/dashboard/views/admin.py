"""Admin pages: every account, every key (revoke; reinstate a suspended one), and the security
events.

Security events are the security plugin's detections (usage spikes, keys used from many
addresses, failed-auth bursts; newest first, from the store) and the audit log, newest first,
read through the store's hash chain: every key, account and privacy action of the admin API,
the CLI, the dashboard and the plugin's automatic suspensions.
"""

from __future__ import annotations

from aiohttp import web

from onyproxy.admin.records import account_record, key_record, suspension_details, timestamp
from onyproxy.dashboard.audit import audit, forget_keys, revoke_with_created
from onyproxy.dashboard.pages import json_reply, page, redirect, render, store
from onyproxy.keys import key_is_usable, reinstate_key
from onyproxy.storage import Account, ApiKey, AuditEntry, NotFoundError, Store
from onyproxy.storage.security import SecurityEvent

PAGE = 100
EVENTS = 200
SCAN = 20_000


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/admin/accounts", accounts_page)
    router.add_get("/admin/keys", keys_page)
    router.add_post("/admin/keys/{key}/revoke", revoke)
    router.add_post("/admin/keys/{key}/reinstate", reinstate)
    router.add_get("/admin/security", security_page)
    router.add_get("/api/admin/accounts", accounts_json)
    router.add_get("/api/admin/keys", keys_json)
    router.add_get("/api/admin/security", security_json)


@page("admin")
async def accounts_page(request: web.Request) -> web.StreamResponse:
    number = _page_number(request)
    accounts = await store(request).list_accounts(limit=PAGE + 1, offset=(number - 1) * PAGE)
    return render(request, "admin_accounts.html", {
        "title": "Accounts", "accounts": accounts[:PAGE], "page": number,
        "more": len(accounts) > PAGE})


@page("admin")
async def accounts_json(request: web.Request) -> web.StreamResponse:
    number = _page_number(request)
    accounts = await store(request).list_accounts(limit=PAGE, offset=(number - 1) * PAGE)
    return json_reply({"data": [account_record(a) for a in accounts], "page": number})


@page("admin")
async def keys_page(request: web.Request) -> web.StreamResponse:
    rows = [{"key": k, "email": a.email, "usable": key_is_usable(k), "current": False}
            for a, k in await _all_keys(store(request))]
    return render(request, "admin_keys.html", {"title": "All keys", "rows": rows,
                                               "show_account": True,
                                               "revoke_prefix": "/ui/admin/keys/"})


@page("admin")
async def keys_json(request: web.Request) -> web.StreamResponse:
    return json_reply({"data": [key_record(k) for _, k in await _all_keys(store(request))]})


@page("admin")
async def revoke(request: web.Request) -> web.StreamResponse:
    await revoke_with_created(request, await _key(request))
    return redirect("/ui/admin/keys")


@page("admin")
async def reinstate(request: web.Request) -> web.StreamResponse:
    """Lift a suspension (e.g. the security plugin's), audited like the admin API does."""
    key = await _key(request)
    await reinstate_key(store(request), key.id)
    if key.suspended:
        await audit(request, "key.reinstate", key.id, **suspension_details(key))
    forget_keys(request)
    return redirect("/ui/admin/keys")


async def _key(request: web.Request) -> ApiKey:
    key = await store(request).get_key(request.match_info["key"])
    if key is None:
        raise NotFoundError("key", request.match_info["key"])
    return key


@page("admin")
async def security_page(request: web.Request) -> web.StreamResponse:
    kind, action = _security_filters(request)
    return render(request, "admin_security.html", {
        "title": "Security events", "kind": kind, "action": action,
        "detections": await _detections(store(request), kind),
        "events": await newest_audit(store(request), EVENTS, action)})


@page("admin")
async def security_json(request: web.Request) -> web.StreamResponse:
    kind, action = _security_filters(request)
    return json_reply({
        "detections": [_detection_record(d) for d in await _detections(store(request), kind)],
        "audit": [_event_record(e) for e in await newest_audit(store(request), EVENTS, action)]})


def _security_filters(request: web.Request) -> tuple[str, str]:
    return request.query.get("kind", "").strip(), request.query.get("action", "").strip()


async def _detections(db: Store, kind: str) -> list[SecurityEvent]:
    return await db.list_security_events(kind=kind or None, limit=EVENTS, newest_first=True)


async def newest_audit(db: Store, limit: int, action_prefix: str = "") -> list[AuditEntry]:
    """The newest ``limit`` audit entries (newest first), optionally only actions starting
    with ``action_prefix`` (e.g. ``key.`` or ``security.``); a filtered view looks back at
    most :data:`SCAN` entries."""
    after = await db.count_audit()
    floor = max(0, after - SCAN)
    found: list[AuditEntry] = []
    while len(found) < limit and after > floor:
        after = max(floor, after - limit)
        chunk = await db.list_audit_chain(after_seq=after, limit=limit)
        found += [e for e in reversed(chunk) if e.action.startswith(action_prefix)]
    return found[:limit]


async def _all_keys(db: Store) -> list[tuple[Account, ApiKey]]:
    pairs = []
    offset = 0
    while accounts := await db.list_accounts(limit=500, offset=offset):
        for account in accounts:
            pairs += [(account, k) for k in await db.list_keys(account.id)]
        offset += len(accounts)
    return pairs


def _detection_record(event: SecurityEvent) -> dict:
    return {"id": event.id, "at": timestamp(event.at), "kind": event.kind,
            "action": event.action, "key_id": event.key_id, "account_id": event.account_id,
            "client": event.client, "reason": event.reason, "evidence": event.evidence}


def _event_record(entry: AuditEntry) -> dict:
    return {"id": entry.id, "at": timestamp(entry.at), "actor": entry.actor,
            "action": entry.action, "target": entry.target, "details": entry.details}


def _page_number(request: web.Request) -> int:
    value = request.query.get("page", "1")
    return int(value) if value.isdigit() and int(value) > 0 else 1
