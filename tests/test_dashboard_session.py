"""Dashboard sign-in, sessions and CSRF: cookie flags, refusals, revocation, workers."""

from __future__ import annotations

import html
import time

import jwt
import pytest
from dashboard_fixtures import (
    JWT_SECRET,
    PEPPER,
    ManualClock,
    csrf_in,
    dashboard_config,
    open_dashboard,
    set_cookies,
)

from onyproxy.app import create_app
from onyproxy.dashboard.session import ANON_COOKIE, COOKIE, LIFETIME_S, Signer, derive_secret


def admin_token(**claims) -> str:
    payload = {"sub": "ops@example.com", "role": "admin", "exp": int(time.time()) + 600,
               **claims}
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


async def test_signing_in_with_a_key_sets_an_httponly_lax_session_cookie(aiohttp_client,
                                                                         tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    response = await ui.sign_in(person.secret)
    assert response.status == 303
    assert response.headers["Location"] == "/ui/usage"
    cookie = set_cookies(response)[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/ui"
    assert not cookie["secure"]  # no server.tls here
    assert 0 < int(cookie["max-age"]) <= LIFETIME_S
    assert person.secret not in cookie.value
    page = await ui.client.get("/ui/usage")
    assert page.status == 200
    assert "ayse@example.com" in await page.text()


@pytest.mark.parametrize("server", [
    {"tls": {"cert_file": "c.pem", "key_file": "k.pem"}},
    {"behind_https_proxy": True},  # HTTPS ends at a load balancer in front of the gateway
])
async def test_the_session_cookie_is_secure_when_the_client_side_is_https(
        aiohttp_client, tmp_path, server):
    ui = await open_dashboard(aiohttp_client, tmp_path, server=server)
    person = await ui.person()
    form = await ui.client.get("/ui/signin")
    anon = set_cookies(form)[ANON_COOKIE]
    assert anon["secure"] is True and anon["httponly"] is True
    # The test talks plain HTTP, so its cookie jar keeps Secure cookies back: send it by hand.
    response = await ui.client.post(
        "/ui/signin", data={"csrf": csrf_in(await form.text()), "credential": person.secret},
        cookies={ANON_COOKIE: anon.value}, allow_redirects=False)
    assert response.status == 303
    assert set_cookies(response)[COOKIE]["secure"] is True


async def test_a_wrong_key_is_refused_without_a_session(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    response = await ui.sign_in("ony-" + "x" * 40)
    assert response.status == 401
    assert "not valid" in await response.text()
    assert COOKIE not in set_cookies(response)
    assert (await ui.client.get("/ui/usage", allow_redirects=False)).status == 303


async def test_sign_in_without_the_form_token_is_refused(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.client.get("/ui/signin")
    response = await ui.client.post("/ui/signin", data={"credential": person.secret},
                                    allow_redirects=False)
    assert response.status == 403
    assert COOKIE not in set_cookies(response)
    forged = await ui.client.post("/ui/signin", data={"credential": person.secret,
                                                      "csrf": "forged"},
                                  allow_redirects=False)
    assert forged.status == 403


async def test_a_post_from_another_origin_is_refused_even_with_a_token(aiohttp_client,
                                                                       tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    token = await ui.csrf()
    response = await ui.client.post("/ui/signin", data={"csrf": token,
                                                        "credential": person.secret},
                                    headers={"Origin": "https://evil.example"},
                                    allow_redirects=False)
    assert response.status == 403


async def test_a_token_from_another_visitor_does_not_work(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    other = await open_dashboard(aiohttp_client, tmp_path / "..")  # a second browser
    person = await ui.person()
    foreign = await other.csrf()
    await ui.client.get("/ui/signin")
    response = await ui.client.post("/ui/signin", data={"csrf": foreign,
                                                        "credential": person.secret},
                                    allow_redirects=False)
    assert response.status == 403


async def test_every_signed_in_form_needs_the_sessions_token(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    anonymous_token = await ui.csrf()
    await ui.sign_in(person.secret)
    stale = await ui.client.post("/ui/keys", data={"csrf": anonymous_token, "name": "x"},
                                 allow_redirects=False)
    assert stale.status == 403  # the token before sign-in belongs to another basis
    keys = await ui.gw.store.list_keys(person.account.id)
    assert [k.name for k in keys] == ["laptop"]


async def test_signing_out_clears_the_cookie(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.sign_in(person.secret)
    response = await ui.post("/ui/signout", token_from="/ui/usage")
    assert response.status == 303
    assert set_cookies(response)[COOKIE].value == ""
    assert (await ui.client.get("/ui/usage", allow_redirects=False)).status == 303


async def test_revoking_the_sign_in_key_elsewhere_ends_the_session(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.sign_in(person.secret)
    await ui.gw.store.revoke_key(person.key_id)
    response = await ui.client.get("/ui/usage", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/ui/signin")
    assert set_cookies(response)[COOKIE].value == ""


async def test_a_suspended_account_loses_its_session(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.sign_in(person.secret)
    await ui.gw.store.set_account_status(person.account.id, "suspended")
    assert (await ui.client.get("/ui/keys", allow_redirects=False)).status == 303


async def test_a_tampered_session_cookie_counts_as_signed_out(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    response = await ui.sign_in(person.secret)
    value = set_cookies(response)[COOKIE].value
    payload, mac = value.split(".")
    ui.client.session.cookie_jar.clear()
    tampered = await ui.client.get("/ui/usage", cookies={COOKIE: payload + "x." + mac},
                                   allow_redirects=False)
    assert tampered.status == 303
    assert set_cookies(tampered)[COOKIE].value == ""  # and the browser is told to drop it
    genuine = await ui.client.get("/ui/usage", cookies={COOKIE: value}, allow_redirects=False)
    assert genuine.status == 200


async def test_any_worker_sharing_the_pepper_accepts_the_session(aiohttp_client, tmp_path):
    """With server.workers > 1 every process derives the same signing secret."""
    first = await open_dashboard(aiohttp_client, tmp_path)
    person = await first.person()
    response = await first.sign_in(person.secret)
    cookie = set_cookies(response)[COOKIE].value
    second = await aiohttp_client(create_app(dashboard_config(tmp_path)))
    page = await second.get("/ui/usage", cookies={COOKIE: cookie}, allow_redirects=False)
    assert page.status == 200


def test_a_session_expires_with_its_lifetime():
    now = [1_000_000.0]
    signer = Signer(derive_secret(PEPPER), secure=False, clock=lambda: now[0])
    session = signer.new_session("key", "account:acc_1", account_id="acc_1", key_id="key_1")
    value = signer.encode(session)
    assert signer.decode(value) == session
    now[0] += LIFETIME_S + 1
    assert signer.decode(value) is None


def test_a_key_that_expires_sooner_shortens_the_session():
    signer = Signer(derive_secret(PEPPER), secure=False, clock=lambda: 1000.0)
    session = signer.new_session("key", "account:a", not_after=1060.0)
    assert session.expires == 1060


async def test_an_admin_jwt_opens_the_admin_pages_only(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    response = await ui.sign_in(admin_token())
    assert response.status == 303
    assert response.headers["Location"] == "/ui/admin/accounts"
    assert (await ui.client.get("/ui/admin/accounts")).status == 200
    usage = await ui.client.get("/ui/usage")
    assert usage.status == 403
    assert (await ui.client.get("/ui/api/usage")).status == 403


@pytest.mark.parametrize("claims, message", [
    ({"role": "user"}, "admin role"),
    ({"exp": int(time.time()) - 10}, "expired"),
])
async def test_a_jwt_without_admin_rights_is_refused(aiohttp_client, tmp_path, claims, message):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    response = await ui.sign_in(admin_token(**claims))
    assert response.status == 401
    assert message in await response.text()


async def test_a_user_key_does_not_open_admin_pages(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.sign_in(person.secret)
    assert (await ui.client.get("/ui/admin/accounts")).status == 403
    assert (await ui.client.get("/ui/api/admin/keys")).status == 403


async def test_an_admin_key_opens_both_account_and_admin_pages(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    admin = await ui.person("root@example.com", role="admin")
    await ui.sign_in(admin.secret)
    assert (await ui.client.get("/ui/usage")).status == 200
    assert (await ui.client.get("/ui/admin/security")).status == 200


async def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(aiohttp_client,
                                                                        tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    first = await ui.client.get("/ui/keys", allow_redirects=False)
    assert first.headers["Location"] == "/ui/signin?next=/ui/keys"
    form = await ui.client.get(first.headers["Location"])
    response = await ui.client.post("/ui/signin", data={
        "csrf": csrf_in(await form.text()), "credential": person.secret, "next": "/ui/keys"},
        allow_redirects=False)
    assert response.headers["Location"] == "/ui/keys"
    await ui.post("/ui/signout", token_from="/ui/keys")
    response = await ui.client.post("/ui/signin", data={
        "csrf": await ui.csrf(), "credential": person.secret, "next": "//evil.example/"},
        allow_redirects=False)
    assert response.headers["Location"] == "/ui/usage"


async def test_pages_carry_security_headers_and_are_not_cached(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    response = await ui.client.get("/ui/signin")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["x-request-id"]


async def test_unknown_dashboard_paths_answer_with_an_html_404(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    response = await ui.client.get("/ui/no-such-page")
    assert response.status == 404
    assert response.content_type == "text/html"
    assert (await ui.client.get("/ui", allow_redirects=False)).headers["Location"] == "/ui/"


async def test_failed_sign_ins_count_as_ui_auth_failures(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    await ui.sign_in("ony-" + "y" * 40)
    await ui.sign_in("not even a key")
    metrics = await (await ui.client.get("/metrics")).text()
    assert 'onyproxy_auth_failures_total{surface="ui"} 2.0' in metrics


async def test_failed_sign_ins_count_toward_the_same_block_as_the_api(aiohttp_client, tmp_path):
    """Guessing keys on the sign-in form is slowed and blocked like guessing on the API."""
    ui = await open_dashboard(aiohttp_client, tmp_path, pipeline=[
        {"name": "auth", "failures": {"max": 3, "delay_s": 0}},
        {"name": "routing", "retries": 0, "timeout_s": 5}])
    person = await ui.person()
    for letter in "abc":
        assert (await ui.sign_in("ony-" + letter * 40)).status == 401
    blocked = await ui.sign_in("ony-" + "d" * 40)
    assert blocked.status == 429 and "Too many failed sign-ins" in await blocked.text()
    assert COOKIE not in set_cookies(blocked)
    api = await ui.client.post("/v1/chat/completions", headers={"x-api-key": "ony-" + "e" * 40},
                               json={"model": "mock-small",
                                     "messages": [{"role": "user", "content": "hi"}]})
    assert api.status == 429  # the same address, blocked on the API as well
    assert (await ui.sign_in(person.secret)).status == 303  # a valid key still signs in


# admin sign-in (JWT sessions) and signing out ------------------------------------------------
async def test_a_copied_session_cookie_stops_working_after_sign_out(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    copied = set_cookies(await ui.sign_in(person.secret))[COOKIE].value
    await ui.post("/ui/signout", token_from="/ui/usage")
    ui.client.session.cookie_jar.clear()
    replayed = await ui.client.get("/ui/usage", cookies={COOKIE: copied},
                                   allow_redirects=False)
    assert replayed.status == 303 and replayed.headers["Location"].startswith("/ui/signin")
    other_worker = await aiohttp_client(create_app(dashboard_config(tmp_path)))
    elsewhere = await other_worker.get("/ui/usage", cookies={COOKIE: copied},
                                       allow_redirects=False)
    assert elsewhere.status == 303  # the record is in the shared store, not in a process
    fresh = set_cookies(await ui.sign_in(person.secret))[COOKIE].value
    assert (await ui.client.get("/ui/usage", cookies={COOKIE: fresh},
                                allow_redirects=False)).status == 200


async def test_a_jwt_session_ends_at_the_tokens_exp(aiohttp_client, tmp_path):
    clock = ManualClock()
    ui = await open_dashboard(aiohttp_client, tmp_path, clock=clock)
    await ui.sign_in(admin_token(exp=int(clock.now) + 120))
    clock.now += 110
    assert (await ui.client.get("/ui/admin/accounts", allow_redirects=False)).status == 200
    clock.now += 11
    assert (await ui.client.get("/ui/admin/accounts", allow_redirects=False)).status == 303


async def test_changing_the_jwt_secret_ends_jwt_sessions(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    cookie = set_cookies(await ui.sign_in(admin_token()))[COOKIE].value
    assert (await ui.client.get("/ui/admin/accounts", allow_redirects=False)).status == 200
    rotated = dashboard_config(tmp_path, security={"key_pepper": PEPPER,
                                                   "jwt_secret": "another-jwt-secret-" + "x" * 32})
    restarted = await aiohttp_client(create_app(rotated))
    page = await restarted.get("/ui/admin/accounts", cookies={COOKIE: cookie},
                               allow_redirects=False)
    assert page.status == 303 and page.headers["Location"].startswith("/ui/signin")
    same = await aiohttp_client(create_app(dashboard_config(tmp_path)))
    assert (await same.get("/ui/admin/accounts", cookies={COOKIE: cookie},
                           allow_redirects=False)).status == 200


@pytest.mark.parametrize(("claims", "security", "message"), [
    ({"exp": int(time.time()) + 86400 + 600}, {}, "jwt_max_lifetime_s"),
    ({"iat": int(time.time()) - 60, "exp": int(time.time()) + 3600}, {"jwt_max_lifetime_s": 600},
     "jwt_max_lifetime_s"),
    ({}, {"jwt_issuer": "https://sso.example.com"}, "'iss'"),
    ({"iss": "https://evil.example"}, {"jwt_issuer": "https://sso.example.com"}, "'iss'"),
    ({}, {"jwt_audience": "onyproxy-admin"}, "'aud'"),
    ({"aud": "another-app"}, {"jwt_audience": "onyproxy-admin"}, "'aud'"),
])
async def test_dashboard_jwt_sign_in_checks_lifetime_issuer_and_audience(
        aiohttp_client, tmp_path, claims, security, message):
    ui = await open_dashboard(aiohttp_client, tmp_path, security={
        "key_pepper": PEPPER, "jwt_secret": JWT_SECRET, **security})
    response = await ui.sign_in(admin_token(**claims))
    assert response.status == 401
    assert message in html.unescape(await response.text())
    assert COOKIE not in set_cookies(response) or not set_cookies(response)[COOKIE].value


async def test_a_jwt_with_the_configured_issuer_and_audience_signs_in(aiohttp_client,
                                                                       tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path, security={
        "key_pepper": PEPPER, "jwt_secret": JWT_SECRET, "jwt_issuer": "https://sso.example.com",
        "jwt_audience": "onyproxy-admin", "jwt_max_lifetime_s": 3600})
    token = admin_token(iss="https://sso.example.com", aud=["onyproxy-admin", "other"],
                        iat=int(time.time()), exp=int(time.time()) + 3600)
    assert (await ui.sign_in(token)).status == 303
    assert (await ui.client.get("/ui/admin/accounts")).status == 200
