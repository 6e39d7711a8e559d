"""Data-subject rights, objections, audit verification, regions and privacy-policy acceptance
through the admin API over loopback, on SQLite and on SecantusDB."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import aiohttp
import jwt
import pytest
from privacy_env import BACKENDS, JWT_SECRET, backend_param, gateway_config, usage
from storage.conftest import (
    drop_database,
    mongo_url,  # noqa: F401 (the session's SecantusDB)
)

from onyproxy.appkeys import GATEWAY
from onyproxy.storage import utcnow


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    return backend_param(request, tmp_path)


class Admin:
    """Calls to the admin API as ``jwt:dpo@example.com``."""

    def __init__(self, session: aiohttp.ClientSession, store: Any) -> None:
        self.session, self.store = session, store
        claims = {"sub": "dpo@example.com", "role": "admin", "exp": int(time.time()) + 300}
        self.headers = {"authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, 'HS256')}"}

    async def call(self, method: str, path: str, body: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.session.request(method, path, json=body,
                                        headers=self.headers if headers is None else headers
                                        ) as resp:
            return resp.status, await resp.json()

    async def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        got, data = await self.call(method, path, body)
        assert got == status, data
        return data


@pytest.fixture
async def admin(gateway, backend):
    config = gateway_config(backend, privacy={"policy_version": "v2"})
    server = await gateway({k: config[k] for k in ("security", "storage", "providers",
                                                   "models", "pipeline", "privacy")})
    store = server.app[GATEWAY].store
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as session:
        yield Admin(session, store)
    if backend.name == "mongo":
        await drop_database(backend)


async def person(admin: Admin) -> dict[str, Any]:
    account = await admin.ok("POST", "/admin/accounts", {
        "email": "ayse@example.com", "name": "Ayşe Demir", "phone": "+905321234567",
        "regions": ["TR", "eu"]}, status=201)
    now = utcnow()
    await admin.store.insert_usage_events([
        usage("r1", account["id"], "istanbul", now - timedelta(days=2)),
        usage("r2", account["id"], "frankfurt", now - timedelta(days=1))])
    return account


async def test_export_correct_and_the_audit_trail(admin) -> None:
    account = await person(admin)
    assert account["regions"] == ["tr", "eu"]
    data = await admin.ok("GET", f"/admin/subjects/{account['id']}/export?reason=ticket-42")
    assert data["account"]["email"] == "ayse@example.com"
    assert [(r["provider"], r["country"]) for r in data["recipients"]] == [
        ("frankfurt", "European Union"), ("istanbul", "Türkiye")]
    fixed = await admin.ok("POST", f"/admin/subjects/{account['id']}/correct",
                           {"field": "last_name", "value": "Yıldız", "reason": "marriage"})  # noqa: RUF001
    assert fixed["name"] == "Ayşe Yıldız"  # noqa: RUF001
    status, bad = await admin.call("POST", f"/admin/subjects/{account['id']}/correct",
                                   {"field": "role", "value": "admin"})
    assert (status, bad["error"]["param"]) == (400, "field")
    status, unknown = await admin.call("POST", f"/admin/subjects/{account['id']}/correct",
                                       {"field": "phone", "value": "1", "why": "x"})
    assert (status, unknown["error"]["code"]) == (400, "unknown_field")
    trail = [(e.actor, e.action, e.details.get("reason"))
             for e in await admin.store.list_audit(target=account["id"])]
    assert trail[-2:] == [("jwt:dpo@example.com", "subject.export", "ticket-42"),
                          ("jwt:dpo@example.com", "subject.correct", "marriage")]


async def test_erase_returns_the_recipients_to_notify(admin) -> None:
    account = await person(admin)
    key = await admin.ok("POST", "/admin/keys", {"account": account["id"],
                                                 "regions": "tr"}, status=201)
    assert key["regions"] == ["tr"]
    done = await admin.ok("POST", f"/admin/subjects/{account['id']}/erase",
                          {"reason": "KVKK request"})
    assert done["keys_revoked"] == 1 and done["usage_events_anonymised"] == 2
    assert [r["provider"] for r in done["notify"]] == ["frankfurt", "istanbul"]
    shown = await admin.ok("GET", f"/admin/accounts/{account['id']}")
    assert (shown["email"], shown["phone"], shown["status"]) == (
        f"erased-{account['id']}@invalid", None, "deleted")
    async with admin.session.post("/v1/chat/completions", json={"model": "mock-small", "messages": [
                                      {"role": "user", "content": "hi"}]},
                                  headers={"authorization": f"Bearer {key['key']}"}) as resp:
        assert resp.status == 401


async def test_objections_are_recorded_listed_and_resolved(admin) -> None:
    account = await person(admin)
    made = await admin.ok("POST", f"/admin/subjects/{account['id']}/objections",
                          {"reason": "automatic block was wrong", "decision": "ip block"},
                          status=201)
    assert (made["status"], made["actor"]) == ("open", "jwt:dpo@example.com")
    status, missing = await admin.call("POST", f"/admin/subjects/{account['id']}/objections",
                                       {})
    assert (status, missing["error"]["param"]) == (400, "reason")
    listed = await admin.ok("GET", "/admin/objections?status=open&account=ayse@example.com")
    assert [o["id"] for o in listed["data"]] == [made["id"]]
    done = await admin.ok("POST", f"/admin/objections/{made['id']}/resolve",
                          {"outcome": "rejected", "resolution": "abuse confirmed"})
    assert (done["status"], done["resolution"]) == ("rejected", "abuse confirmed")
    status, _ = await admin.call("POST", "/admin/objections/obj_nope/resolve",
                                 {"outcome": "upheld", "resolution": "x"})
    assert status == 404
    status, _ = await admin.call("GET", "/admin/objections?status=maybe")
    assert status == 400


async def test_audit_verify_and_sign_in(admin, backend) -> None:
    await person(admin)
    report = await admin.ok("GET", "/admin/audit/verify")
    # The chain's keyed switch point and the account's creation, checked with the audit key
    # and against the heads the gateway anchored at start.
    assert report["ok"] and report["entries"] == 2 and len(report["head"]["hash"]) == 64
    # SQLite anchors next to the file by default; MongoDB only with security.audit_anchor_file
    assert report["anchors_checked"] == (1 if backend.name == "sqlite" else 0)
    status, _ = await admin.call("GET", "/admin/audit/verify", headers={})
    assert status == 401
    status, _ = await admin.call("GET", "/admin/subjects/acc_nope/export")
    assert status == 404


async def test_policy_acceptance_and_who_has_not_accepted(admin) -> None:
    account = await person(admin)
    other = await admin.ok("POST", "/admin/accounts", {"email": "bob@example.com",
                                                       "name": "Bob"}, status=201)
    overview = await admin.ok("GET", "/admin/privacy/policy")
    assert overview["version"] == "v2"
    assert [p["id"] for p in overview["pending"]] == [account["id"], other["id"]]
    accepted = await admin.ok("POST", f"/admin/accounts/{account['id']}/policy", {})
    assert accepted["accepted_version"] == "v2" and accepted["accepted_at"]
    await admin.ok("POST", f"/admin/accounts/{other['id']}/policy", {"version": "v1"})
    pending = (await admin.ok("GET", "/admin/privacy/policy"))["pending"]
    assert [(p["id"], p["accepted_version"]) for p in pending] == [(other["id"], "v1")]
    await admin.ok("DELETE", f"/admin/accounts/{other['id']}")
    assert (await admin.ok("GET", "/admin/privacy/policy"))["pending"] == []
    actions = [e.action for e in await admin.store.list_audit(target=account["id"])]
    assert actions[-1] == "policy.accept"
