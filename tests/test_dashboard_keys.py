"""The keys page: list, create (the secret shown exactly once), revoke, contest a suspension;
and its JSON."""

from __future__ import annotations

import re

from dashboard_fixtures import PEPPER, open_dashboard

from onyproxy.dashboard.session import COOKIE
from onyproxy.keys import create_key
from onyproxy.storage import SecurityEvent, utcnow

CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "hi"}]}
SECRET = re.compile(r"ony-[A-Za-z0-9_-]{40}")


async def signed_in(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.sign_in(person.secret)
    return ui, person


async def chat(ui, secret: str) -> int:
    response = await ui.client.post("/v1/chat/completions", json=CHAT,
                                    headers={"Authorization": f"Bearer {secret}"})
    return response.status


async def test_the_keys_page_lists_prefixes_never_secrets_or_hashes(aiohttp_client, tmp_path):
    ui, person = await signed_in(aiohttp_client, tmp_path)
    html = await (await ui.client.get("/ui/keys")).text()
    key = await ui.gw.store.get_key(person.key_id)
    assert key.prefix in html and "laptop" in html and "this session" in html
    assert person.secret not in html and key.hash not in html
    assert not SECRET.search(html)


async def test_a_new_key_is_shown_once_and_works(aiohttp_client, tmp_path):
    ui, person = await signed_in(aiohttp_client, tmp_path)
    response = await ui.post("/ui/keys", {"name": "ci"}, token_from="/ui/keys")
    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"
    html = await response.text()
    secrets_shown = SECRET.findall(html)
    assert len(secrets_shown) == 1
    secret = secrets_shown[0]
    assert "shown only this once" in html
    assert await chat(ui, secret) == 200
    again = await (await ui.client.get("/ui/keys")).text()
    assert secret not in again and "ci" in again
    listed = await (await ui.client.get("/ui/api/keys")).json()
    assert secret not in str(listed)
    assert {k["name"] for k in listed["data"]} == {"laptop", "ci"}
    assert all("hash" not in k for k in listed["data"])
    audit = await ui.gw.store.list_audit(actor=f"account:{person.account.id}")
    assert [(e.action, e.details["via"]) for e in audit] == [("key.create", "dashboard")]


async def test_creating_a_key_without_the_token_creates_nothing(aiohttp_client, tmp_path):
    ui, person = await signed_in(aiohttp_client, tmp_path)
    response = await ui.client.post("/ui/keys", data={"name": "sneaky"})
    assert response.status == 403
    assert len(await ui.gw.store.list_keys(person.account.id)) == 1


async def test_a_past_expiry_is_refused_with_a_message(aiohttp_client, tmp_path):
    ui, _ = await signed_in(aiohttp_client, tmp_path)
    response = await ui.post("/ui/keys", {"name": "old", "expires": "2001-01-01"},
                             token_from="/ui/keys")
    assert response.status == 400
    assert "in the past" in await response.text()


async def test_revoking_a_key_stops_it_at_once(aiohttp_client, tmp_path):
    ui, person = await signed_in(aiohttp_client, tmp_path)
    created = await ui.post("/ui/keys", {"name": "ci"}, token_from="/ui/keys")
    secret = SECRET.search(await created.text()).group(0)
    assert await chat(ui, secret) == 200
    key = next(k for k in await ui.gw.store.list_keys(person.account.id) if k.name == "ci")
    response = await ui.post(f"/ui/keys/{key.id}/revoke", token_from="/ui/keys")
    assert response.status == 303 and response.headers["Location"] == "/ui/keys"
    assert (await ui.gw.store.get_key(key.id)).revoked
    assert await chat(ui, secret) == 401  # the auth cache was told
    html = await (await ui.client.get("/ui/keys")).text()
    assert "revoked" in html


async def test_revoking_needs_the_token(aiohttp_client, tmp_path):
    ui, person = await signed_in(aiohttp_client, tmp_path)
    response = await ui.client.post(f"/ui/keys/{person.key_id}/revoke")
    assert response.status == 403
    assert not (await ui.gw.store.get_key(person.key_id)).revoked


async def test_another_accounts_key_cannot_be_revoked(aiohttp_client, tmp_path):
    ui, _ = await signed_in(aiohttp_client, tmp_path)
    other = await ui.person("bob@example.com")
    response = await ui.post(f"/ui/keys/{other.key_id}/revoke", token_from="/ui/keys")
    assert response.status == 404
    assert not (await ui.gw.store.get_key(other.key_id)).revoked


async def test_revoking_the_sign_in_key_signs_out(aiohttp_client, tmp_path):
    ui, person = await signed_in(aiohttp_client, tmp_path)
    response = await ui.post(f"/ui/keys/{person.key_id}/revoke", token_from="/ui/keys")
    assert response.headers["Location"] == "/ui/signin"
    after = await ui.client.get("/ui/keys", allow_redirects=False)
    assert after.status == 303
    assert after.cookies[COOKIE].value == ""


async def test_the_keys_json_needs_a_session(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    response = await ui.client.get("/ui/api/keys")
    assert response.status == 401
    assert (await response.json())["error"]["status"] == 401


async def test_a_suspended_key_can_be_contested(aiohttp_client, tmp_path):
    ui, person = await signed_in(aiohttp_client, tmp_path)
    other = await create_key(ui.gw.store, person.account.id, pepper=PEPPER, name="ci")
    await ui.gw.store.suspend_key(other.record.id, reason="used from 40 addresses",
                                  by="system:security", at=utcnow())
    suspension = SecurityEvent(id="sec_ci", kind="many_ips", at=utcnow(), action="suspend",
                               key_id=other.record.id, account_id=person.account.id)
    await ui.gw.store.add_security_event(suspension)
    await ui.gw.store.add_security_event(SecurityEvent(  # later: the sign-in key, reinstated
        id="sec_laptop", kind="usage_spike", at=utcnow(), action="suspend",
        key_id=person.key_id, account_id=person.account.id))
    html = await (await ui.client.get("/ui/keys")).text()
    assert "was suspended" in html and "used from 40 addresses" in html
    response = await ui.post(f"/ui/keys/{other.record.id}/object",
                             {"reason": "We moved our CI to a new runner pool."},
                             token_from="/ui/keys")
    assert response.status == 200
    assert "objection was recorded" in await response.text()
    [objection] = await ui.gw.store.list_objections(account_id=person.account.id)
    assert objection.reason == "We moved our CI to a new runner pool."
    assert other.record.id in objection.decision and objection.status == "open"
    assert (objection.event_id, objection.key_id) == ("sec_ci", other.record.id)
    refused = await ui.post(f"/ui/keys/{person.key_id}/object", {"reason": "x"},
                            token_from="/ui/keys")
    assert refused.status == 400  # not suspended
