"""Admin pages: accounts, every key (with revoke), security detections and the audit log."""

from __future__ import annotations

from datetime import timedelta

from dashboard_fixtures import open_dashboard

from onyproxy.storage import AuditEntry, utcnow
from onyproxy.storage.security import SecurityEvent


async def as_admin(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    admin = await ui.person("root@example.com", role="admin")
    user = await ui.person("ayse@example.com")
    await ui.sign_in(admin.secret)
    return ui, admin, user


async def test_accounts_page_lists_every_account(aiohttp_client, tmp_path):
    ui, admin, user = await as_admin(aiohttp_client, tmp_path)
    html = await (await ui.client.get("/ui/admin/accounts")).text()
    assert "root@example.com" in html and "ayse@example.com" in html
    data = await (await ui.client.get("/ui/api/admin/accounts")).json()
    assert {a["id"] for a in data["data"]} == {admin.account.id, user.account.id}


async def test_all_keys_page_lists_and_revokes_any_key(aiohttp_client, tmp_path):
    ui, admin, user = await as_admin(aiohttp_client, tmp_path)
    html = await (await ui.client.get("/ui/admin/keys")).text()
    assert user.secret not in html and admin.secret not in html
    assert html.count("<td>laptop") == 2 and "ayse@example.com" in html
    response = await ui.post(f"/ui/admin/keys/{user.key_id}/revoke",
                             token_from="/ui/admin/keys")
    assert response.status == 303 and response.headers["Location"] == "/ui/admin/keys"
    assert (await ui.gw.store.get_key(user.key_id)).revoked
    data = await (await ui.client.get("/ui/api/admin/keys")).json()
    revoked = {k["id"]: k["revoked"] for k in data["data"]}
    assert revoked == {admin.key_id: False, user.key_id: True}
    events = await (await ui.client.get("/ui/api/admin/security?action=key.")).json()
    assert events["audit"][0]["action"] == "key.revoke"
    assert events["audit"][0]["actor"] == f"account:{admin.account.id}"


async def test_security_events_show_real_audit_entries_newest_first(aiohttp_client, tmp_path):
    ui, _, user = await as_admin(aiohttp_client, tmp_path)
    for n in range(3):
        await ui.gw.store.append_audit(AuditEntry(actor="cli:ops", action=f"account.update{n}",
                                                  target=user.account.id))
    await ui.gw.store.append_audit(AuditEntry(actor="security", action="security.usage_spike",
                                              target=user.key_id, details={"factor": 12}))
    html = await (await ui.client.get("/ui/admin/security")).text()
    assert html.index("security.usage_spike") < html.index("account.update2") \
        < html.index("account.update0")
    assert "factor" in html and "12" in html
    filtered = await (await ui.client.get("/ui/admin/security?action=security.")).text()
    assert "security.usage_spike" in filtered and "account.update" not in filtered
    data = await (await ui.client.get("/ui/api/admin/security")).json()
    assert data["audit"][0]["action"] == "security.usage_spike"


async def test_security_events_show_the_plugins_detections(aiohttp_client, tmp_path):
    ui, _, user = await as_admin(aiohttp_client, tmp_path)
    store = ui.gw.store
    await store.add_security_event(SecurityEvent(
        id="sev_1", kind="many_ips", at=utcnow() - timedelta(minutes=5), key_id=user.key_id,
        account_id=user.account.id, reason="key used from 12 addresses in 60 s",
        evidence={"addresses": 12, "threshold": 5}))
    await store.add_security_event(SecurityEvent(
        id="sev_2", kind="usage_spike", at=utcnow(), action="suspend", key_id=user.key_id,
        account_id=user.account.id, reason="42x its baseline", evidence={"factor": 42}))
    await store.suspend_key(user.key_id, reason="usage spike", by="system:security",
                            at=utcnow())
    html = await (await ui.client.get("/ui/admin/security")).text()
    table = html[html.index('id="detections-table"'):html.index('id="audit-title"')]
    assert table.index("usage_spike") < table.index("many_ips")
    assert "key suspended" in table and "42x its baseline" in table and "threshold" in table
    only = await (await ui.client.get("/ui/api/admin/security?kind=many_ips")).json()
    assert [d["id"] for d in only["detections"]] == ["sev_1"]
    keys = await (await ui.client.get("/ui/admin/keys")).text()
    assert "suspended" in keys and f"/ui/admin/keys/{user.key_id}/reinstate" in keys


async def test_a_suspended_key_can_be_reinstated(aiohttp_client, tmp_path):
    ui, _, user = await as_admin(aiohttp_client, tmp_path)
    await ui.gw.store.suspend_key(user.key_id, reason="usage spike", by="system:security",
                                  at=utcnow())
    response = await ui.post(f"/ui/admin/keys/{user.key_id}/reinstate",
                             token_from="/ui/admin/keys")
    assert response.status == 303
    assert not (await ui.gw.store.get_key(user.key_id)).suspended
    entry = (await ui.gw.store.list_audit(target=user.key_id))[-1]
    assert entry.action == "key.reinstate"
    assert entry.details["suspended_reason"] == "usage spike"
    assert entry.details["via"] == "dashboard"


async def test_security_events_escape_what_they_show(aiohttp_client, tmp_path):
    ui, _, _ = await as_admin(aiohttp_client, tmp_path)
    await ui.gw.store.append_audit(AuditEntry(actor="<b>x</b>", action="key.create",
                                              details={"name": "<img src=x>"}))
    html = await (await ui.client.get("/ui/admin/security")).text()
    assert "<img src=x>" not in html and "&lt;img src=x&gt;" in html


async def test_admin_pages_refuse_users_and_strangers(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    user = await ui.person()
    for path in ("/ui/admin/accounts", "/ui/admin/keys", "/ui/admin/security"):
        assert (await ui.client.get(path, allow_redirects=False)).status == 303
    await ui.sign_in(user.secret)
    for path in ("/ui/admin/accounts", "/ui/admin/keys", "/ui/admin/security"):
        assert (await ui.client.get(path)).status == 403
    response = await ui.post(f"/ui/admin/keys/{user.key_id}/revoke", token_from="/ui/keys")
    assert response.status == 403
    assert not (await ui.gw.store.get_key(user.key_id)).revoked
