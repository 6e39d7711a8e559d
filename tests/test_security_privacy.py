"""The security plugin's stored events under the privacy features, on SQLite and SecantusDB:
`subject export` shows them (and security monitoring among the purposes), `subject erase`
drops their client addresses, purging the erased account deletes them, and an objection names
the automatic suspension it contests (`subject object --event`, default the latest one), in
the CLI, the admin API and `subject objections`."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import aiohttp
import jwt
import pytest
from privacy_env import (
    JWT_SECRET,
    Cli,
    backend,
    gateway_config,
    store_on,
    usage,
    write_config,
)
from storage.conftest import mongo_url  # noqa: F401 (the session's SecantusDB)

from onyproxy.admin.records import timestamp
from onyproxy.appkeys import GATEWAY
from onyproxy.config.model import RetentionConfig
from onyproxy.privacy import export
from onyproxy.retention import run_retention
from onyproxy.storage import Account, ApiKey, SecurityEvent, Store, new_id, utcnow

__all__ = ["backend", "store_on"]  # fixtures
pytestmark = pytest.mark.slow

CLIENT = "5f1e0c2a9b7d3e41"  # a client address as the plugin's keyed hash
MINUTE = timedelta(minutes=1)


async def person(store: Store, email: str = "ayse@example.com") -> tuple[Account, ApiKey]:
    account = await store.create_account(Account(id=new_id("acc"), email=email,
                                                 first_name="Ayşe", phone="+905321234567"))
    key = await store.create_key(ApiKey(id=new_id("key"), account_id=account.id,
                                        name="laptop", prefix="ony-x", hash=email.ljust(64, "x")))
    return account, key


async def detect(store: Store, key: ApiKey | None, minutes_ago: int, *, action: str = "log",
                 kind: str = "usage_spike", client: str | None = None) -> SecurityEvent:
    """Store what the security plugin would: a key event (with its account) or, without a
    key, an event about a client address."""
    event = SecurityEvent(
        id=new_id("sec"), kind=kind, at=utcnow() - minutes_ago * MINUTE, action=action,
        key_id=key.id if key else None, account_id=key.account_id if key else None,
        client=client, reason=f"{kind} found {minutes_ago} minutes ago",
        evidence={"per_minute": 900.0, "baseline": 3.5, "factor": 10})
    await store.add_security_event(event)
    return event


async def run(fn, *args, **kwargs):
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
def cli(backend, tmp_path) -> Cli:
    return Cli(write_config(tmp_path, backend))


# export and erasure ------------------------------------------------------------------------
async def test_export_holds_the_persons_security_events_and_why(cli, store_on) -> None:
    account, key = await person(store_on)
    _, other_key = await person(store_on, "bob@example.com")
    spike = await detect(store_on, key, 30, action="suspend")
    spread = await detect(store_on, key, 10, kind="many_ips", client=CLIENT)
    await detect(store_on, other_key, 20)
    await detect(store_on, None, 5, kind="auth_failures", client="0123456789abcdef")

    data = json.loads((await run(cli.run, "subject", "export", "--account",
                                 account.email)).stdout)
    events = data["security_events"]
    assert [e["id"] for e in events] == [spike.id, spread.id]
    assert {k: events[0][k] for k in ("kind", "action", "key_id", "reason", "evidence")} == {
        "kind": "usage_spike", "action": "suspend", "key_id": key.id,
        "reason": spike.reason, "evidence": spike.evidence}
    assert events[0]["at"].endswith("Z") and events[1]["client"] == CLIENT
    (purpose,) = [p for p in data["purposes"] if p["purpose"].startswith("Security monitoring")]
    assert "5(2)(f)" in purpose["legal_basis"] and "usage_events_days" in purpose["retention"]
    assert any("keyed hash" in item for item in purpose["data"])
    assert data["retention"]["security_events_days"] == 90
    (entry,) = [e for e in await store_on.list_audit(target=account.id)
                if e.action == "subject.export"]
    assert entry.details["security_events"] == 2


async def test_the_export_reads_every_page_of_events(store_on, monkeypatch) -> None:
    account, key = await person(store_on)
    made = [await detect(store_on, key, minutes) for minutes in (50, 40, 30, 20, 10)]
    await store_on.insert_usage_events([usage(f"r{n}", account.id, "istanbul",
                                              utcnow() - n * MINUTE) for n in range(5)])
    monkeypatch.setattr(export, "PAGE", 2)
    assert [e.id for e in await export.all_security_events(store_on, account.id)] == [
        e.id for e in made]
    assert [e.request_id for e in await export.all_usage_events(store_on, account.id)] == [
        "r4", "r3", "r2", "r1", "r0"]


async def test_erasure_drops_client_addresses_and_the_purge_deletes_the_events(
        cli, store_on) -> None:
    account, key = await person(store_on)
    _, other_key = await person(store_on, "bob@example.com")
    mine = await detect(store_on, key, 10, kind="many_ips", client=CLIENT)
    theirs = await detect(store_on, other_key, 10, kind="many_ips", client=CLIENT)

    done = await run(cli.json, "subject", "erase", "--account", account.id)
    assert done["security_events_anonymised"] == 1
    (kept,) = await store_on.list_security_events(account_id=account.id)
    assert (kept.id, kept.client, kept.evidence) == (mine.id, None, mine.evidence)
    assert (await store_on.list_security_events(account_id=theirs.account_id))[0].client == CLIENT
    (entry,) = [e for e in await store_on.list_audit(target=account.id)
                if e.action == "subject.erase"]
    assert entry.details["security_events"] == 1
    table = await run(cli.run, "subject", "erase", "--account", account.id)
    assert "client addresses from 0 security events" in table.stderr  # already dropped

    later = await run_retention(store_on, RetentionConfig(), now=utcnow() + timedelta(days=31))
    assert (later.accounts, later.security_events) == (1, 1)
    assert [e.id for e in await store_on.list_security_events()] == [theirs.id]


# objections --------------------------------------------------------------------------------
async def suspensions(store: Store) -> tuple[Account, SecurityEvent, SecurityEvent]:
    """An account with two automatic suspensions and a later logged event."""
    account, key = await person(store)
    first = await detect(store, key, 60, action="suspend")
    latest = await detect(store, key, 30, action="suspend", kind="many_ips")
    await detect(store, key, 5)
    return account, first, latest


async def test_an_objection_contests_the_latest_suspension_by_default(cli, store_on) -> None:
    account, _, latest = await suspensions(store_on)
    made = await run(cli.json, "subject", "object", "--account", account.email, "--reason",
                     "I was running a batch job")
    assert (made["event_id"], made["key_id"]) == (latest.id, latest.key_id)
    assert made["decided_at"] == timestamp(latest.at)
    assert made["decision"] == f"key {latest.key_id} suspended automatically (many_ips): " \
                               f"{latest.reason}"
    (stored,) = await store_on.list_objections(account_id=account.id)
    assert (stored.event_id, stored.key_id) == (latest.id, latest.key_id)
    listed = await run(cli.json, "subject", "objections", "--account", account.id)
    assert listed[0]["event_id"] == latest.id
    table = (await run(cli.run, "subject", "objections")).stdout.splitlines()
    assert "CONTESTS" in table[0].split() and f"event {latest.id} (key {latest.key_id}" \
        in table[1]
    (entry,) = [e for e in await store_on.list_audit(target=account.id)
                if e.action == "subject.object"]
    assert entry.details == {"objection_id": made["id"], "event_id": latest.id}


async def test_an_objection_can_name_an_earlier_suspension(cli, store_on) -> None:
    account, first, _ = await suspensions(store_on)
    made = await run(cli.json, "subject", "object", "--account", account.id, "--reason",
                     "that one too", "--event", first.id, "--decision", "the first block")
    assert (made["event_id"], made["decision"]) == (first.id, "the first block")
    logged = (await store_on.list_security_events(account_id=account.id, action="log"))[0]
    _, stranger = await person(store_on, "bob@example.com")
    elsewhere = await detect(store_on, stranger, 1, action="suspend")
    for wrong in (logged.id, elsewhere.id, "sec_nope"):
        bad = await run(cli.run, "subject", "object", "--account", account.id, "--reason",
                        "x", "--event", wrong, status=1)
        assert bad.stderr.startswith(f"onyproxy: event: '{wrong}' is not an automatic "
                                     f"suspension of account {account.id}")
    assert len(await store_on.list_objections(account_id=account.id)) == 1


async def test_without_a_suspension_the_objection_names_none(cli, store_on) -> None:
    account, key = await person(store_on)
    await detect(store_on, key, 5)  # logged only: no decision was taken
    made = await run(cli.json, "subject", "object", "--account", account.id, "--reason",
                     "you profile me", "--decision", "usage monitoring")
    assert (made["event_id"], made["key_id"], made["decided_at"]) == (None, None, None)
    assert made["decision"] == "usage monitoring"
    table = (await run(cli.run, "subject", "objections")).stdout.splitlines()
    assert table[1].split()[5] == "-"  # CONTESTS, after the two words of CREATED


# the admin API -----------------------------------------------------------------------------
@pytest.fixture
async def admin(gateway, backend, store_on):
    config = gateway_config(backend)
    server = await gateway({k: config[k] for k in ("security", "storage", "providers",
                                                   "models", "pipeline")})
    claims = {"sub": "dpo@example.com", "role": "admin", "exp": int(time.time()) + 300}
    headers = {"authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, 'HS256')}"}
    async with aiohttp.ClientSession(base_url=str(server.make_url("")),
                                     headers=headers) as session:
        yield session, server.app[GATEWAY].store


async def post(session: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, Any]:
    async with session.post(path, json=body) as resp:
        return resp.status, await resp.json()


async def test_the_admin_api_records_the_contested_suspension(admin) -> None:
    session, store = admin
    account, first, latest = await suspensions(store)
    path = f"/admin/subjects/{account.id}/objections"
    status, made = await post(session, path, {"reason": "batch job"})
    assert (status, made["event_id"], made["key_id"]) == (201, latest.id, latest.key_id)
    status, earlier = await post(session, path, {"reason": "and this", "event": first.id})
    assert (status, earlier["event_id"]) == (201, first.id)
    status, bad = await post(session, path, {"reason": "x", "event": "sec_nope"})
    assert (status, bad["error"]["param"]) == (400, "event")
    async with session.get("/admin/objections", params={"account": account.id}) as resp:
        listed = (await resp.json())["data"]
    assert [o["event_id"] for o in listed] == [latest.id, first.id]
    async with session.get(f"/admin/subjects/{account.id}/export") as resp:
        exported = await resp.json()
    assert len(exported["security_events"]) == 3
    assert [o["event_id"] for o in exported["objections"]] == [latest.id, first.id]
