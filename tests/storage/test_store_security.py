"""The security part of the Store contract (key suspension, security events); runs once on
SQLite and once on MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from onyproxy.keys import key_is_usable
from onyproxy.storage import (
    Account,
    ApiKey,
    ConflictError,
    NotFoundError,
    SecurityEvent,
    Store,
    new_id,
    utcnow,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


async def key(store: Store, n: int = 1) -> ApiKey:
    account = await store.get_account_by_email("ada@example.com") or await store.create_account(
        Account(id=new_id("acc"), email="ada@example.com", first_name="Ada"))
    return await store.create_key(ApiKey(id=new_id("key"), account_id=account.id,
                                         name=f"k{n}", prefix="ony-AbCdEfGh", hash=f"{n}" * 64))


def event(kind: str, at: datetime, **fields: object) -> SecurityEvent:
    return SecurityEvent(id=new_id("sec"), kind=kind, at=at, **fields)  # type: ignore[arg-type]


# suspension --------------------------------------------------------------------------------
async def test_new_keys_are_not_suspended(store: Store) -> None:
    made = await key(store)
    assert not made.suspended
    assert (made.suspended_at, made.suspended_by, made.suspended_reason) == (None, None, None)


async def test_suspension_is_stored_refuses_the_key_and_reads_back_by_hash(store: Store) -> None:
    made = await key(store)
    suspended = await store.suspend_key(made.id, reason="requests 900/min > 120",
                                        by="system:security", at=T0)
    assert suspended.suspended and suspended.suspended_at == T0
    assert (suspended.suspended_by, suspended.suspended_reason) == (
        "system:security", "requests 900/min > 120")
    again = await store.get_key_by_hash(made.hash)
    assert again == suspended
    assert not key_is_usable(again)
    assert not again.revoked  # a suspension is not a revocation


async def test_suspending_twice_keeps_the_first_suspension(store: Store) -> None:
    made = await key(store)
    await store.suspend_key(made.id, reason="first", by="system:security", at=T0)
    later = await store.suspend_key(made.id, reason="second", by="cli:root",
                                    at=T0 + timedelta(minutes=5))
    assert (later.suspended_at, later.suspended_by, later.suspended_reason) == (
        T0, "system:security", "first")


async def test_reinstating_clears_the_suspension_only(store: Store) -> None:
    made = await key(store)
    await store.suspend_key(made.id, reason="spike", by="system:security", at=T0)
    reinstated = await store.reinstate_key(made.id)
    assert not reinstated.suspended
    assert (reinstated.suspended_by, reinstated.suspended_reason) == (None, None)
    assert key_is_usable(reinstated)
    assert (await store.reinstate_key(made.id)) == reinstated  # idempotent
    await store.revoke_key(made.id)
    assert (await store.reinstate_key(made.id)).revoked  # revocation is for good


async def test_suspending_or_reinstating_an_unknown_key_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.suspend_key("key_missing", reason="x", by="system:security", at=T0)
    with pytest.raises(NotFoundError):
        await store.reinstate_key("key_missing")


async def test_suspended_keys_are_listed_with_their_suspension(store: Store) -> None:
    made = await key(store)
    await store.suspend_key(made.id, reason="many IPs", by="system:security", at=T0)
    [listed] = await store.list_keys(made.account_id)
    assert listed.suspended_reason == "many IPs"


# security events ---------------------------------------------------------------------------
async def test_security_event_reads_back_identically(store: Store) -> None:
    made = event("usage_spike", T0, action="suspend", key_id="key_1", account_id="acc_1",
                 reason="requests per minute 900 above 120",
                 evidence={"rate": 900, "baseline": 3.5, "factor": 10, "threshold": 120})
    await store.add_security_event(made)
    assert await store.list_security_events() == [made]


async def test_an_event_id_stored_twice_is_a_conflict(store: Store) -> None:
    made = event("many_ips", T0, key_id="key_1")
    await store.add_security_event(made)
    with pytest.raises(ConflictError) as conflict:
        await store.add_security_event(made)
    assert conflict.value.field == "id"


async def test_security_events_filter_and_order(store: Store) -> None:
    spike = event("usage_spike", T0, key_id="key_1", account_id="acc_1", action="suspend")
    ips = event("many_ips", T0 + timedelta(seconds=1), key_id="key_2", account_id="acc_1")
    auth = event("auth_failures", T0 + timedelta(seconds=2), client="ip:0123456789abcdef")
    for made in (auth, spike, ips):
        await store.add_security_event(made)
    assert [e.id for e in await store.list_security_events()] == [spike.id, ips.id, auth.id]
    assert [e.id for e in await store.list_security_events(newest_first=True, limit=2)] == [
        auth.id, ips.id]
    assert [e.id for e in await store.list_security_events(account_id="acc_1")] == [
        spike.id, ips.id]
    assert [e.id for e in await store.list_security_events(key_id="key_2")] == [ips.id]
    assert [e.id for e in await store.list_security_events(kind="auth_failures")] == [auth.id]
    assert [e.id for e in await store.list_security_events(action="suspend")] == [spike.id]
    since = T0 + timedelta(seconds=1)
    assert [e.id for e in await store.list_security_events(since=since)] == [ips.id, auth.id]


async def test_purging_security_events_removes_only_older_ones(store: Store) -> None:
    old = event("auth_failures", T0 - timedelta(days=100), client="ip:aa")
    new = event("auth_failures", T0, client="ip:bb")
    await store.add_security_event(old)
    await store.add_security_event(new)
    cutoff = T0 - timedelta(days=90)
    assert await store.purge_security_events(cutoff, dry_run=True) == 1
    assert len(await store.list_security_events()) == 2
    assert await store.purge_security_events(cutoff) == 1
    assert [e.id for e in await store.list_security_events()] == [new.id]


# signed-out dashboard sessions -------------------------------------------------------------
# Times ahead of the wall clock: a backend may drop records whose time has passed.
NOW = utcnow() + timedelta(days=1)


async def test_a_revoked_session_stays_revoked_until_its_expiry(store: Store) -> None:
    await store.revoke_session("sid-1", until=NOW + timedelta(hours=8))
    assert await store.session_revoked("sid-1", NOW)
    assert await store.session_revoked("sid-1", NOW + timedelta(hours=7, minutes=59))
    assert not await store.session_revoked("sid-1", NOW + timedelta(hours=8))
    assert not await store.session_revoked("sid-2", NOW)


async def test_revoking_a_session_twice_keeps_the_later_expiry(store: Store) -> None:
    await store.revoke_session("sid-1", until=NOW + timedelta(hours=8))
    await store.revoke_session("sid-1", until=NOW + timedelta(hours=1))
    assert await store.session_revoked("sid-1", NOW + timedelta(hours=2))
