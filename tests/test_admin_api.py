"""The admin API over loopback, on SQLite and on SecantusDB: signing in (JWT cases, admin
keys), account and key CRUD with field-naming errors, the audit log, and that no answer,
record or log line lets a key be recovered once created."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import jwt
import pytest
from conftest import BASE_CONFIG
from pymongo import AsyncMongoClient
from storage.conftest import (
    Backend,
    drop_database,
    mongo_url,  # noqa: F401 (the session's SecantusDB, for `backend`)
)

from onyproxy.accounts import create_account
from onyproxy.appkeys import GATEWAY
from onyproxy.keys import create_key

PEPPER = "admin-test-pepper-0123456789abcdef"
JWT_SECRET = "admin-test-jwt-secret-0123456789abcdefghij"
CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "hi"}]}


def token(claims: dict[str, Any] | None = None, secret: str = JWT_SECRET) -> str:
    payload = {"sub": "ops@example.com", "role": "admin", "exp": int(time.time()) + 300,
               **(claims or {})}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret,
                      algorithm="HS256")


def tampered() -> str:
    """A user's token with its role raised to admin, keeping the user token's signature."""
    header, _, signature = token({"role": "user"}).split(".")
    return f"{header}.{token().split('.')[1]}.{signature}"


def unsigned_token() -> str:
    """A token with ``alg: none`` and no signature, which must never be accepted."""
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    claims = {"sub": "ops@example.com", "role": "admin", "exp": int(time.time()) + 300}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


class Api:
    """Calls to one running gateway, signed in with an admin JWT unless told otherwise."""

    def __init__(self, url: str, server: Any, session: aiohttp.ClientSession) -> None:
        self.url, self.server, self.session = url, server, session
        self.auth = {"authorization": f"Bearer {token()}"}

    @property
    def store(self) -> Any:
        return self.server.app[GATEWAY].store

    async def call(self, method: str, path: str, body: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        async with self.session.request(method, self.url + path, json=body,
                                        headers=self.auth if headers is None else headers) as r:
            return r.status, await r.json(), r.headers

    async def chat(self, secret: str) -> int:
        async with self.session.post(self.url + "/v1/chat/completions", json=CHAT,
                                     headers={"authorization": f"Bearer {secret}"}) as resp:
            return resp.status


def storage_url(backend: Backend) -> str:
    if backend.name == "sqlite":
        return backend.url
    parts = urlsplit(backend.url)
    return urlunsplit(parts._replace(path="/" + backend.options["database"]))


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """SQLite in this test's directory, or a fresh database on the session's SecantusDB."""
    if request.param == "sqlite":
        path = tmp_path / "store" / "onyproxy.db"
        return Backend("sqlite", f"sqlite:///{path}", sqlite_path=path)
    return Backend("mongo", request.getfixturevalue("mongo_url"),
                   {"database": f"onyproxy_admin_{uuid.uuid4().hex[:12]}"})


@pytest.fixture
async def api(gateway, backend) -> AsyncIterator[Api]:
    server = await gateway({
        "security": {"key_pepper": PEPPER, "jwt_secret": JWT_SECRET},
        "storage": {"url": storage_url(backend)},
        "pipeline": [{"name": "auth", "cache_ttl_s": 60}, *BASE_CONFIG["pipeline"]]})
    async with aiohttp.ClientSession() as session:
        yield Api(str(server.make_url("")).rstrip("/"), server, session)
    if backend.name == "mongo":
        await drop_database(backend)


async def new_account(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"email": "ada@example.com", "name": "Ada Lovelace", **fields}
    status, account, _ = await api.call("POST", "/admin/accounts", body)
    assert status == 201, account
    return account


# -- signing in ------------------------------------------------------------------------------


@pytest.mark.parametrize("credential, status, says", [
    (None, 401, "Sign in"),
    (unsigned_token(), 401, "HS256"),
    (token(secret="some-other-secret-0123456789abcdefghij"), 401, "signature"),
    (token({"exp": int(time.time()) - 10}), 401, "expired"),
    (token({"exp": None}), 401, "'exp'"),
    (token({"sub": None}), 401, "'sub'"),
    (token({"role": "user"}), 403, "admin role"),
    (tampered(), 401, "signature"),
    ("ony-" + "Q" * 40, 401, "Invalid admin API key"),
])
async def test_sign_in_failures(api, credential, status, says):
    headers = {} if credential is None else {"authorization": f"Bearer {credential}"}
    got, body, response_headers = await api.call("GET", "/admin/accounts", headers=headers)
    assert got == status and says in body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert response_headers["x-request-id"]


@pytest.mark.parametrize("security, claims, status, says", [
    ({}, {"exp": int(time.time()) + 86400 + 600}, 401, "jwt_max_lifetime_s"),
    ({"jwt_max_lifetime_s": 300}, {"iat": int(time.time()), "exp": int(time.time()) + 301}, 401,
     "jwt_max_lifetime_s"),
    ({"jwt_max_lifetime_s": 300}, {"iat": int(time.time()), "exp": int(time.time()) + 300}, 200,
     None),
    ({"jwt_issuer": "https://sso.example.com"}, {}, 401, "'iss'"),
    ({"jwt_issuer": "https://sso.example.com"}, {"iss": "https://other.example"}, 401, "'iss'"),
    ({"jwt_issuer": "https://sso.example.com"}, {"iss": "https://sso.example.com"}, 200, None),
    ({"jwt_audience": "onyproxy"}, {}, 401, "'aud'"),
    ({"jwt_audience": "onyproxy"}, {"aud": "grafana"}, 401, "'aud'"),
    ({"jwt_audience": "onyproxy"}, {"aud": ["grafana", "onyproxy"]}, 200, None),
])
async def test_admin_jwts_are_bounded_in_lifetime_and_bound_to_issuer_and_audience(
        gateway, tmp_path, security, claims, status, says):
    server = await gateway({"security": {"key_pepper": PEPPER, "jwt_secret": JWT_SECRET,
                                         **security},
                            "storage": {"url": f"sqlite:///{tmp_path}/onyproxy.db"}})
    async with aiohttp.ClientSession() as session:
        api = Api(str(server.make_url("")).rstrip("/"), server, session)
        got, body, _ = await api.call("GET", "/admin/accounts",
                                      headers={"authorization": f"Bearer {token(claims)}"})
    assert got == status, body
    if says is not None:
        assert says in body["error"]["message"]


def test_the_jwt_settings_are_checked_at_start():
    from onyproxy.config import ConfigError, parse_config
    with pytest.raises(ConfigError, match=r"security\.jwt_max_lifetime_s"):
        parse_config("security: {jwt_max_lifetime_s: 0}\n", "gateway.yaml", {})


async def test_failed_admin_sign_ins_are_counted(api):
    for credential in (unsigned_token(), "ony-" + "Q" * 40, token({"role": "user"})):
        await api.call("GET", "/admin/accounts", headers={"authorization": f"Bearer {credential}"})
    async with api.session.get(api.url + "/metrics") as resp:
        scraped = await resp.text()
    assert 'onyproxy_auth_failures_total{surface="admin"} 2.0' in scraped  # the 403 is not one


async def test_failed_admin_sign_ins_count_toward_the_api_block(gateway, tmp_path):
    server = await gateway({
        "security": {"key_pepper": PEPPER, "jwt_secret": JWT_SECRET},
        "pipeline": [{"name": "auth", "failures": {"max": 3, "delay_s": 0}},
                     *BASE_CONFIG["pipeline"]]})
    async with aiohttp.ClientSession() as session:
        api = Api(str(server.make_url("")).rstrip("/"), server, session)
        for credential in (unsigned_token(), "ony-" + "Q" * 40, tampered()):
            got, _, _ = await api.call("GET", "/admin/accounts",
                                       headers={"authorization": f"Bearer {credential}"})
            assert got == 401
        got, body, _ = await api.call("GET", "/admin/accounts",
                                      headers={"authorization": "Bearer ony-" + "R" * 40})
        assert (got, body["error"]["code"]) == (429, "too_many_auth_failures")
        assert await api.chat("ony-" + "S" * 40) == 429  # and on the API, the same address
        got, _, _ = await api.call("GET", "/admin/accounts")  # a valid JWT still gets in
        assert got == 200


async def test_an_admin_key_signs_in_and_a_user_key_is_refused(api):
    admin = await create_account(api.store, email="root@example.com", name="Root",
                                 role="admin")
    admin_key = await create_key(api.store, admin.id, pepper=PEPPER, owner=True)
    user = await new_account(api)
    user_key = await create_key(api.store, user["id"], pepper=PEPPER)
    status, listed, _ = await api.call("GET", "/admin/accounts",
                                       headers={"x-api-key": admin_key.secret})
    assert status == 200 and {a["email"] for a in listed["data"]} == {"root@example.com",
                                                                     "ada@example.com"}
    status, body, _ = await api.call(
        "GET", "/admin/accounts", headers={"authorization": f"Bearer {user_key.secret}"})
    assert status == 403 and body["error"]["code"] == "not_admin"
    await api.call("POST", f"/admin/keys/{admin_key.record.id}/revoke")
    status, _, _ = await api.call("GET", "/admin/accounts",
                                  headers={"x-api-key": admin_key.secret})
    assert status == 401  # no cache in front of admin keys: revoked is revoked at once


async def test_an_admin_accounts_key_without_the_owner_role_is_refused(api):
    admin = await create_account(api.store, email="root@example.com", name="Root",
                                 role="admin")
    limited = await create_key(api.store, admin.id, pepper=PEPPER, models=["mock-small"])
    status, body, _ = await api.call("POST", "/admin/keys", {"account": admin.id},
                                     headers={"x-api-key": limited.secret})
    assert status == 403 and body["error"]["code"] == "not_owner"
    assert [k.id for k in await api.store.list_keys(admin.id)] == [limited.record.id]


# -- accounts --------------------------------------------------------------------------------


async def test_account_crud_and_its_audit_trail(api):
    account = await new_account(api, phone="+90 532 123 45 67", company="Analytical Engines",
                                billing={"tax_id": "1234567890", "address": "Istanbul"})
    assert (account["email"], account["phone"], account["status"]) == (
        "ada@example.com", "+905321234567", "active")
    assert (await api.call("GET", f"/admin/accounts/{account['id']}"))[1] == account
    assert (await api.call("GET", "/admin/accounts/ADA@example.com"))[1]["id"] == account["id"]
    status, changed, _ = await api.call("PATCH", f"/admin/accounts/{account['id']}",
                                        {"name": "Augusta Ada King", "phone": None})
    assert status == 200 and (changed["first_name"], changed["last_name"],
                              changed["phone"]) == ("Augusta Ada", "King", None)
    status, deleted, _ = await api.call("DELETE", f"/admin/accounts/{account['id']}")
    assert status == 200 and deleted["status"] == "deleted" and deleted["deleted_at"]
    status, listed, _ = await api.call("GET", "/admin/accounts?status=deleted")
    assert [a["id"] for a in listed["data"]] == [account["id"]]
    trail = await api.store.list_audit(target=account["id"])
    assert [(e.actor, e.action) for e in trail] == [
        ("jwt:ops@example.com", "account.create"), ("jwt:ops@example.com", "account.update"),
        ("jwt:ops@example.com", "account.delete")]
    assert trail[1].details == {"fields": ["name", "phone"]}


@pytest.mark.parametrize("body, status, param", [
    ({"email": "not-an-email", "name": "A"}, 400, "email"),
    ({"email": "b@example.com", "name": "B", "phone": "12"}, 400, "phone"),
    ({"email": "b@example.com"}, 400, "first_name"),
    ({"email": "b@example.com", "name": "B", "role": "root"}, 400, "role"),
    ({"email": "b@example.com", "name": "B", "plan": "gold"}, 400, "plan"),
    ({"email": "b@example.com", "name": "B", "billing": {"tax_id": "1234567"}}, 400, "company"),
    ({"email": "ADA@example.com", "name": "Ada Again"}, 409, "email"),
])
async def test_account_errors_name_the_field(api, body, status, param):
    await new_account(api)
    got, answer, _ = await api.call("POST", "/admin/accounts", body)
    assert (got, answer["error"]["param"]) == (status, param)
    assert answer["error"]["message"]


async def test_unknown_records_are_404(api):
    for method, path in [("GET", "/admin/accounts/acc_nope"), ("PATCH", "/admin/accounts/x@y.io"),
                         ("DELETE", "/admin/accounts/acc_nope"), ("GET", "/admin/keys/key_nope"),
                         ("POST", "/admin/keys/key_nope/revoke")]:
        status, body, _ = await api.call(method, path, {} if method == "PATCH" else None)
        assert (status, body["error"]["code"]) == (404, "not_found"), path


async def test_suspending_an_account_stops_its_keys_at_once_in_this_worker(api):
    account = await new_account(api)
    _, key, _ = await api.call("POST", "/admin/keys", {"account": account["id"]})
    assert await api.chat(key["key"]) == 200
    await api.call("PATCH", f"/admin/accounts/{account['id']}", {"status": "suspended"})
    assert await api.chat(key["key"]) == 401  # cache_ttl_s is 60 here: forgotten, not expired


# -- keys ------------------------------------------------------------------------------------


async def test_key_lifecycle(api):
    account = await new_account(api)
    status, created, _ = await api.call("POST", "/admin/keys", {
        "account": "ada@example.com", "name": "ci", "rpm": 60, "budget_usd": "25.00",
        "models": ["mock-small"], "expires_at": "2099-01-01"})
    assert status == 201 and created["key"].startswith(created["prefix"])
    assert (created["rpm"], created["budget_usd"], created["expires_at"]) == (
        60, "25.00", "2099-01-01T00:00:00.000Z")
    assert await api.chat(created["key"]) == 200
    shown = (await api.call("GET", f"/admin/keys/{created['id']}"))[1]
    listed = (await api.call("GET", f"/admin/keys?account={account['id']}"))[1]["data"]
    assert "key" not in shown and "hash" not in shown and listed == [shown]
    status, rotated, _ = await api.call("POST", f"/admin/keys/{created['id']}/rotate")
    assert status == 201 and rotated["id"] != created["id"] and rotated["name"] == "ci"
    assert (await api.chat(created["key"]), await api.chat(rotated["key"])) == (401, 200)
    status, revoked, _ = await api.call("POST", f"/admin/keys/{rotated['id']}/revoke")
    assert status == 200 and revoked["revoked"] and await api.chat(rotated["key"]) == 401
    actions = [(e.action, e.target) for e in await api.store.list_audit(
        actor="jwt:ops@example.com")]
    assert actions[1:] == [("key.create", created["id"]), ("key.rotate", created["id"]),
                           ("key.revoke", rotated["id"])]


async def test_the_admin_api_creates_owner_keys_and_shows_the_flag(api):
    account = await new_account(api)
    status, owner, _ = await api.call("POST", "/admin/keys", {"account": account["id"],
                                                              "owner": True})
    assert status == 201 and owner["owner"] is True and owner["created_by"] is None
    status, plain, _ = await api.call("POST", "/admin/keys", {"account": account["id"]})
    assert status == 201 and plain["owner"] is False
    listed = (await api.call("GET", f"/admin/keys?account={account['id']}"))[1]["data"]
    assert {k["id"]: k["owner"] for k in listed} == {owner["id"]: True, plain["id"]: False}
    assert (await api.call("GET", f"/admin/keys/{owner['id']}"))[1]["owner"] is True
    rotated = (await api.call("POST", f"/admin/keys/{owner['id']}/rotate"))[1]
    assert rotated["owner"] is True


async def test_revoking_a_key_revokes_the_keys_created_in_its_dashboard_sessions(api):
    account = await new_account(api)
    status, owner, _ = await api.call("POST", "/admin/keys", {"account": account["id"],
                                                              "owner": True})
    parent = await api.store.get_key(owner["id"])
    child = await create_key(api.store, account["id"], pepper=PEPPER, creator=parent)
    assert await api.chat(child.secret) == 200
    status, revoked, _ = await api.call("POST", f"/admin/keys/{owner['id']}/revoke")
    assert status == 200 and revoked["revoked"]
    shown = (await api.call("GET", f"/admin/keys/{child.record.id}"))[1]
    assert shown["revoked"] and shown["created_by"] == owner["id"]
    assert await api.chat(child.secret) == 401
    actions = [(e.action, e.target) for e in await api.store.list_audit(
        actor="jwt:ops@example.com")]
    assert actions[-2:] == [("key.revoke", owner["id"]), ("key.revoke", child.record.id)]


@pytest.mark.parametrize("body, status, param", [
    ({}, 400, "account"),
    ({"account": "ada@example.com", "owner": "yes"}, 400, "owner"),
    ({"account": "nobody@example.com"}, 404, None),
    ({"account": "ada@example.com", "rpm": "fast"}, 400, "rpm"),
    ({"account": "ada@example.com", "rpm": 0}, 400, "rpm"),
    ({"account": "ada@example.com", "budget_usd": "lots"}, 400, "budget_usd"),
    ({"account": "ada@example.com", "models": "mock-small"}, 400, "models"),
    ({"account": "ada@example.com", "expires_at": "2001-01-01"}, 400, "expires_at"),
    ({"account": "ada@example.com", "expires_at": "next week"}, 400, "expires_at"),
    ({"account": "ada@example.com", "secret": "mine"}, 400, "secret"),
])
async def test_key_errors_name_the_field(api, body, status, param):
    await new_account(api)
    got, answer, _ = await api.call("POST", "/admin/keys", body)
    assert (got, answer["error"]["param"]) == (status, param), answer


async def test_nothing_lets_a_created_key_be_recovered(api, backend, caplog):
    account = await new_account(api)
    _, first, _ = await api.call("POST", "/admin/keys", {"account": account["id"]})
    assert await api.chat(first["key"]) == 200
    _, second, _ = await api.call("POST", f"/admin/keys/{first['id']}/rotate")
    assert await api.chat(second["key"]) == 200
    secrets = [first["key"], second["key"]]
    stored = await stored_bytes(backend)
    answers = json.dumps([(await api.call("GET", path))[1] for path in (
        "/admin/keys", "/admin/accounts", f"/admin/keys/{first['id']}")])
    for secret in secrets:
        random_part = secret.removeprefix("ony-")
        for haystack in (stored, caplog.text.encode(), answers.encode()):
            assert random_part.encode() not in haystack
            assert random_part[8:].encode() not in haystack  # past the display prefix


async def stored_bytes(backend: Backend) -> bytes:
    """Everything the store holds: the SQLite files (with WAL), or every Mongo document."""
    if backend.name == "sqlite":
        assert backend.sqlite_path is not None
        return b"".join(path.read_bytes() for path in backend.sqlite_path.parent.iterdir())
    client: AsyncMongoClient = AsyncMongoClient(backend.url)
    try:
        db = client[backend.options["database"]]
        docs = [doc for name in await db.list_collection_names()
                async for doc in db[name].find()]
    finally:
        await client.close()
    assert docs
    return repr(docs).encode()
