"""A key is worth no more in the dashboard than on the API: only an owner key's session manages
the account; any other key's session is read-only and sees only that key; keys created from a
session stay within its key's limits; a key that stops working ends its sessions at once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from dashboard_fixtures import ManualClock, open_dashboard, set_cookies

from onyproxy.dashboard.session import COOKIE
from onyproxy.storage import UsageEvent, utcnow

SECRET = re.compile(r"ony-[A-Za-z0-9_-]{40}")


def event(n: int, account: str, key: str, model: str, cost: str) -> UsageEvent:
    return UsageEvent(request_id=f"req_{n}", account_id=account, key_id=key, model=model,
                      provider="mock", input_tokens=100, output_tokens=10,
                      cost_usd=Decimal(cost), created_at=utcnow())


async def read_only(aiohttp_client, tmp_path, **limits):
    """An account with its owner key, and a session opened with a plain (non-owner) key."""
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    secret, key_id = await ui.key(person, name="app", **limits)
    assert (await ui.sign_in(secret)).status == 303
    return ui, person, key_id


# read-only sessions ------------------------------------------------------------------------
async def test_a_plain_keys_session_cannot_change_anything(aiohttp_client, tmp_path):
    ui, person, key_id = await read_only(aiohttp_client, tmp_path, models=["mock-small"],
                                         rpm=1)
    store = ui.gw.store
    attempts = [
        ("/ui/keys", {"name": "unlimited"}), (f"/ui/keys/{person.key_id}/revoke", {}),
        (f"/ui/keys/{key_id}/revoke", {}), (f"/ui/keys/{key_id}/object", {"reason": "x"}),
        ("/ui/privacy/export", {}), ("/ui/privacy/policy", {"version": "1"}),
        ("/ui/privacy/erase", {"understand": "on", "confirm_email": "ayse@example.com",
                               "confirm_key": person.secret}),
        (f"/ui/admin/keys/{person.key_id}/revoke", {}),
    ]
    for path, form in attempts:
        response = await ui.post(path, form, token_from="/ui/usage")
        assert response.status == 403, path
        assert "read-only" in await response.text()
    keys = await store.list_keys(person.account.id)
    assert sorted(k.name for k in keys) == ["app", "laptop"]
    assert not any(k.revoked for k in keys)
    assert (await store.get_account(person.account.id)).status == "active"
    # nothing audited but the keyed chain's switch point, written when the store opened
    assert [e.action for e in await store.list_audit()] in ([], ["audit.chain_keyed"])
    # what a read-only session may still do: its cookie choice, and signing out
    assert (await ui.post("/ui/consent", {"choice": "essential"})).status == 303
    assert (await ui.post("/ui/signout", token_from="/ui/usage")).status == 303


async def test_a_plain_keys_session_sees_only_its_own_usage_and_key(aiohttp_client, tmp_path):
    ui, person, key_id = await read_only(aiohttp_client, tmp_path)
    account = person.account.id
    await ui.gw.store.insert_usage_events([
        event(1, account, key_id, "mock-small", "0.0015"),
        event(2, account, person.key_id, "owner-only-model", "7.25")])
    page = await (await ui.client.get("/ui/usage")).text()
    assert "mock-small" in page and "owner-only-model" not in page and "$7.25" not in page
    assert 'id="usage-scope"' in page
    figures = await (await ui.client.get("/ui/api/usage")).json()
    assert figures["total"]["requests"] == 1 and figures["total"]["cost_usd"] == "0.0015"
    assert [m["model"] for m in figures["models"]] == ["mock-small"]
    listed = await (await ui.client.get("/ui/api/keys")).json()
    assert [k["id"] for k in listed["data"]] == [key_id]
    keys_page = await (await ui.client.get("/ui/keys")).text()
    assert 'id="read-only"' in keys_page and "laptop" not in keys_page
    assert 'action="/ui/keys"' not in keys_page and "/revoke" not in keys_page
    for path in ("/ui/invoices", "/ui/api/invoices", f"/ui/invoices/{utcnow():%Y-%m}.csv"):
        assert (await ui.client.get(path, allow_redirects=False)).status == 403, path
    privacy = await (await ui.client.get("/ui/privacy")).text()
    assert 'id="privacy-read-only"' in privacy and "/ui/privacy/erase" not in privacy


async def test_an_owner_keys_session_sees_the_whole_account(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    _, key_id = await ui.key(person, name="app")
    await ui.gw.store.insert_usage_events([
        event(1, person.account.id, key_id, "mock-small", "0.0015"),
        event(2, person.account.id, person.key_id, "mock-large", "7.25")])
    await ui.sign_in(person.secret)
    figures = await (await ui.client.get("/ui/api/usage")).json()
    assert figures["total"]["requests"] == 2
    listed = await (await ui.client.get("/ui/api/keys")).json()
    assert {k["name"]: k["owner"] for k in listed["data"]} == {"laptop": True, "app": False}
    assert "owner</span>" in await (await ui.client.get("/ui/keys")).text()


async def test_an_admin_accounts_plain_key_does_not_open_the_admin_pages(aiohttp_client,
                                                                          tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    admin = await ui.person("root@example.com", role="admin")
    secret, _ = await ui.key(admin)
    await ui.sign_in(secret)
    for path in ("/ui/admin/accounts", "/ui/admin/keys", "/ui/api/admin/keys"):
        assert (await ui.client.get(path, allow_redirects=False)).status == 403, path


# keys created from a session ---------------------------------------------------------------
async def narrow_owner(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    expires = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    person = await ui.person(rpm=5, tpm=500, concurrent=1, budget_usd="2.50",
                             models=["mock-small"], regions="tr", expires_at=expires)
    await ui.sign_in(person.secret)
    return ui, person, expires


@pytest.mark.parametrize(("form", "says"), [
    ({"rpm": "6"}, "rpm: must be at most 5"), ({"tpm": "501"}, "tpm: must be at most 500"),
    ({"concurrent": "2"}, "concurrent: must be at most 1"),
    ({"budget_usd": "2.51"}, "budget_usd: must be at most 2.50"),
    ({"models": "mock-small,mock-large"}, "may not use the model mock-large"),
    ({"regions": "tr,us"}, "may not use the region us"),
    ({"expires": ""}, "expires_at: is required"),
    ({"expires": "2099-01-01"}, "expires_at: must be no later than"),
    ({"rpm": "lots"}, "rpm: must be a whole number"),
])
async def test_a_key_created_in_a_session_never_exceeds_the_sessions_key(
        aiohttp_client, tmp_path, form, says):
    ui, person, expires = await narrow_owner(aiohttp_client, tmp_path)
    fields = {"name": "wide", "expires": f"{expires:%Y-%m-%d}", **form}
    response = await ui.post("/ui/keys", fields, token_from="/ui/keys")
    assert response.status == 400
    html = await response.text()
    assert says in html and not SECRET.search(html)
    assert [k.name for k in await ui.gw.store.list_keys(person.account.id)] == ["laptop"]


async def test_a_key_created_in_a_session_takes_its_keys_limits_and_names_its_creator(
        aiohttp_client, tmp_path):
    ui, person, expires = await narrow_owner(aiohttp_client, tmp_path)
    response = await ui.post("/ui/keys", {"name": "ci", "rpm": "2",
                                          "expires": f"{expires:%Y-%m-%d}"},
                             token_from="/ui/keys")
    assert response.status == 201
    secret = SECRET.search(await response.text()).group(0)
    made = next(k for k in await ui.gw.store.list_keys(person.account.id) if k.name == "ci")
    assert (made.rpm, made.tpm, made.concurrent, made.budget_usd) == (2, 500, 1,
                                                                     Decimal("2.50"))
    assert (made.models, made.regions, made.owner, made.created_by) == (
        ["mock-small"], ["tr"], False, person.key_id)
    assert made.expires_at <= expires
    assert secret not in str(made)
    entry = (await ui.gw.store.list_audit(actor=f"account:{person.account.id}"))[0]
    assert (entry.action, entry.details["created_by"]) == ("key.create", person.key_id)


# sessions end with their key ---------------------------------------------------------------
async def test_suspending_the_sign_in_key_ends_its_session_at_once(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.sign_in(person.secret)
    assert (await ui.client.get("/ui/keys", allow_redirects=False)).status == 200
    await ui.gw.store.suspend_key(person.key_id, reason="spike", by="system:security",
                                  at=utcnow())
    response = await ui.client.get("/ui/keys", allow_redirects=False)
    assert response.status == 303 and set_cookies(response)[COOKIE].value == ""


async def test_a_session_ends_when_its_key_expires(aiohttp_client, tmp_path):
    clock = ManualClock()
    ui = await open_dashboard(aiohttp_client, tmp_path, clock=clock)
    expires = datetime.fromtimestamp(clock.now + 3600, UTC)
    person = await ui.person(expires_at=expires)
    await ui.sign_in(person.secret)
    clock.now += 3599
    assert (await ui.client.get("/ui/usage", allow_redirects=False)).status == 200
    clock.now += 2
    assert (await ui.client.get("/ui/usage", allow_redirects=False)).status == 303


async def test_revoking_a_key_revokes_the_keys_created_in_its_sessions(aiohttp_client,
                                                                       tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    spare, spare_id = await ui.key(person, owner=True, name="spare")
    await ui.sign_in(person.secret)
    created = await ui.post("/ui/keys", {"name": "ci"}, token_from="/ui/keys")
    child = SECRET.search(await created.text()).group(0)
    store = ui.gw.store
    child_id = next(k.id for k in await store.list_keys(person.account.id) if k.name == "ci")
    await ui.post("/ui/signout", token_from="/ui/usage")
    await ui.sign_in(spare)
    response = await ui.post(f"/ui/keys/{person.key_id}/revoke", token_from="/ui/keys")
    assert response.status == 303
    assert (await store.get_key(person.key_id)).revoked
    assert (await store.get_key(child_id)).revoked
    assert not (await store.get_key(spare_id)).revoked
    status = (await ui.client.post("/v1/chat/completions", headers={
        "Authorization": f"Bearer {child}"}, json={
        "model": "mock-small", "messages": [{"role": "user", "content": "hi"}]})).status
    assert status == 401
    trail = [(e.action, e.target) for e in await store.list_audit(
        actor=f"account:{person.account.id}")]
    assert ("key.revoke", person.key_id) in trail and ("key.revoke", child_id) in trail
