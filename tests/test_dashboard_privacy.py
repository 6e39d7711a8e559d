"""Privacy: the consent banner and cookies, the KVKK export, erasure and the policy version."""

from __future__ import annotations

import json

from dashboard_fixtures import open_dashboard, set_cookies

from onyproxy.dashboard.consent import ANALYTICS_COOKIE, COOKIE, PREFS_COOKIE
from onyproxy.dashboard.session import COOKIE as SESSION

PAGES = ("/ui/signin", "/ui/models", "/ui/privacy", "/ui/", "/ui/usage")


def jar(ui) -> dict[str, str]:
    return {c.key: c.value for c in ui.client.session.cookie_jar}


async def test_the_banner_shows_until_a_choice_and_no_analytics_cookie_before(aiohttp_client,
                                                                             tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    for path in PAGES:
        response = await ui.client.get(path)
        assert ANALYTICS_COOKIE not in set_cookies(response)
        assert 'id="consent-banner"' in await response.text()
    assert ANALYTICS_COOKIE not in jar(ui) and COOKIE not in jar(ui)


async def test_accepting_all_sets_consent_and_the_analytics_cookie(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    response = await ui.post("/ui/consent", {"choice": "all", "next": "/ui/models"})
    assert response.status == 303 and response.headers["Location"] == "/ui/models"
    consent = set_cookies(response)[COOKIE]
    assert consent.value == "v1.f1.a1"
    assert consent["samesite"] == "Lax" and consent["httponly"] is True
    assert int(consent["max-age"]) == 180 * 24 * 3600
    assert set_cookies(response)[ANALYTICS_COOKIE].value
    page = await (await ui.client.get("/ui/models")).text()
    assert 'id="consent-banner"' not in page


async def test_refusing_keeps_only_essential_cookies_and_removes_analytics(aiohttp_client,
                                                                           tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    await ui.post("/ui/consent", {"choice": "all"})
    assert ANALYTICS_COOKIE in jar(ui)
    response = await ui.post("/ui/consent", {"choice": "essential"})
    assert set_cookies(response)[COOKIE].value == "v1.f0.a0"
    assert set_cookies(response)[ANALYTICS_COOKIE].value == ""  # deleted
    assert ANALYTICS_COOKIE not in jar(ui) and PREFS_COOKIE not in jar(ui)
    assert 'id="consent-banner"' not in await (await ui.client.get("/ui/privacy")).text()


async def test_the_settings_form_sets_each_category(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    response = await ui.post("/ui/consent", {"functional": "on"})
    assert response.headers["Location"] == "/ui/privacy"
    assert set_cookies(response)[COOKIE].value == "v1.f1.a0"
    assert ANALYTICS_COOKIE not in set_cookies(response)
    html = await (await ui.client.get("/ui/privacy")).text()
    assert "functional on, analytics off" in html


async def test_consent_needs_the_token_and_stays_on_site(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    await ui.client.get("/ui/privacy")
    refused = await ui.client.post("/ui/consent", data={"choice": "all"})
    assert refused.status == 403 and COOKIE not in jar(ui)
    response = await ui.post("/ui/consent", {"choice": "all", "next": "https://evil.example/"})
    assert response.headers["Location"] == "/ui/privacy"


async def test_an_unknown_consent_value_asks_again(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    html = await (await ui.client.get("/ui/privacy", cookies={COOKIE: "v0.f1.a1"})).text()
    assert 'id="consent-banner"' in html


async def test_download_my_data_is_the_kvkk_export(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.sign_in(person.secret)
    response = await ui.post("/ui/privacy/export")
    assert response.status == 200
    assert "attachment" in response.headers["Content-Disposition"]
    document = json.loads(await response.read())
    assert document["account"]["email"] == "ayse@example.com"
    assert [k["id"] for k in document["keys"]] == [person.key_id]
    assert person.secret not in json.dumps(document)
    audit = await ui.gw.store.list_audit(target=person.account.id)
    assert "subject.export" in [e.action for e in audit]


async def test_export_needs_a_session_and_the_token(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    assert (await ui.post("/ui/privacy/export")).status == 303  # to sign-in
    await ui.sign_in(person.secret)
    assert (await ui.client.post("/ui/privacy/export")).status == 403


async def test_erasure_needs_an_explicit_confirmation(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.sign_in(person.secret)
    response = await ui.post("/ui/privacy/erase", {"understand": "on",
                                                   "confirm_email": "someone@else.example"})
    assert response.status == 400
    assert (await ui.gw.store.get_account(person.account.id)).email == "ayse@example.com"


async def test_erasure_erases_revokes_and_signs_out(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.sign_in(person.secret)
    response = await ui.post("/ui/privacy/erase", {"understand": "on",
                                                   "confirm_email": "Ayse@Example.com",
                                                   "confirm_key": person.secret})
    assert response.status == 200
    assert "erased" in await response.text()
    assert set_cookies(response)[SESSION].value == ""
    account = await ui.gw.store.get_account(person.account.id)
    assert account.status == "deleted" and "ayse" not in account.email
    assert (await ui.gw.store.get_key(person.key_id)).revoked
    audit = await ui.gw.store.list_audit(target=person.account.id)
    assert "subject.erase" in [e.action for e in audit]


async def test_erasure_asks_for_an_owner_key_of_the_account_again(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    other_owner = await ui.person("bob@example.com")
    plain, _ = await ui.key(person)
    await ui.sign_in(person.secret)
    confirm = {"understand": "on", "confirm_email": "ayse@example.com"}
    for again in ("", "ony-" + "Q" * 40, plain, other_owner.secret):
        response = await ui.post("/ui/privacy/erase", {**confirm, "confirm_key": again})
        assert response.status in (400, 403)
        assert "owner API key" in await response.text()
    assert (await ui.gw.store.get_account(person.account.id)).status == "active"
    assert not (await ui.gw.store.get_key(person.key_id)).revoked
    assert (await ui.client.get("/ui/usage", allow_redirects=False)).status == 200


async def test_accepting_the_policy_in_force_is_recorded(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path, privacy={"policy_version": "2026-02"})
    person = await ui.person()
    await ui.sign_in(person.secret)
    html = await (await ui.client.get("/ui/privacy")).text()
    assert "You have not accepted it yet." in html and 'id="accept-policy"' in html
    stale = await ui.post("/ui/privacy/policy", {"version": "2025-01"})
    assert stale.status == 409
    response = await ui.post("/ui/privacy/policy", {"version": "2026-02"})
    assert response.status == 303
    status = (await ui.gw.store.policy_statuses([person.account.id]))[person.account.id]
    assert status.version == "2026-02"
    html = await (await ui.client.get("/ui/privacy")).text()
    assert "You accepted version 2026-02" in html and 'id="accept-policy"' not in html


async def test_without_a_tracked_policy_there_is_nothing_to_accept(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.sign_in(person.secret)
    html = await (await ui.client.get("/ui/privacy")).text()
    assert "does not track privacy-policy versions" in html
    assert (await ui.post("/ui/privacy/policy", {"version": ""})).status == 409
