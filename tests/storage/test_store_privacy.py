"""The privacy part of the Store contract (retention purges, erasure, objections, policy,
leases, the audit chain); runs once on SQLite and once on MongoDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from onyproxy.storage import (
    Account,
    ApiKey,
    AuditEntry,
    BillingInfo,
    BillingRecord,
    NotFoundError,
    SecurityEvent,
    Store,
    UsageEvent,
    new_id,
)
from onyproxy.storage.audit_chain import GENESIS, entry_hash
from onyproxy.storage.privacy import Objection

T0 = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


async def account(store: Store, email: str = "ada@example.com", **fields: object) -> Account:
    made = Account(id=new_id("acc"), email=email, first_name="Ada", last_name="Lovelace",
                   phone="+905321234567", company="AE Ltd",
                   billing=BillingInfo("1234567890", "Moda, Istanbul"),
                   **fields)  # type: ignore[arg-type]
    return await store.create_account(made)


async def key(store: Store, account_id: str, n: int = 1, **fields: object) -> ApiKey:
    return await store.create_key(ApiKey(id=new_id("key"), account_id=account_id,
                                         name=f"ada-laptop-{n}", prefix="ony-AbCdEfGh",
                                         hash=f"{n}" * 64, **fields))  # type: ignore[arg-type]


def event(request_id: str, account_id: str, at: datetime, provider: str = "openai"
          ) -> UsageEvent:
    return UsageEvent(request_id=request_id, account_id=account_id, key_id="key_1",
                      model="gpt-4o", provider=provider, created_at=at, ip="203.0.113.9",
                      user_agent="openai-python/1.50")


def detection(account_id: str | None, at: datetime, **fields: object) -> SecurityEvent:
    """A security event about the account's key (with a hashed client address)."""
    return SecurityEvent(id=new_id("sec"), kind="many_ips", at=at, action="suspend",
                         key_id="key_1", account_id=account_id, client="5f1e0c2a9b7d3e41",
                         reason="used from 9 client addresses", evidence={"distinct_ips": 9},
                         **fields)  # type: ignore[arg-type]


# regions -----------------------------------------------------------------------------------
async def test_regions_of_accounts_and_keys_read_back(store: Store) -> None:
    made = await account(store, regions=["tr", "eu"])
    assert (await store.get_account(made.id)).regions == ["tr", "eu"]
    updated = await store.update_account(made.id, {"regions": ["tr"]})
    assert updated.regions == ["tr"]
    assert (await store.update_account(made.id, {"regions": None})).regions is None
    limited = await key(store, made.id, regions=["eu"])
    assert (await store.get_key(limited.id)).regions == ["eu"]
    assert (await key(store, made.id, 2)).regions is None


# retention ---------------------------------------------------------------------------------
async def test_usage_purge_counts_then_deletes_only_older_events(store: Store) -> None:
    await store.insert_usage_events([event(f"r{i}", "acc_a", T0 + timedelta(days=i))
                                     for i in range(5)])
    cutoff = T0 + timedelta(days=3)
    assert await store.purge_usage_events(cutoff, dry_run=True) == 3
    assert len(await store.list_usage_events()) == 5
    assert await store.purge_usage_events(cutoff) == 3
    assert [e.request_id for e in await store.list_usage_events()] == ["r3", "r4"]
    assert await store.purge_usage_events(cutoff) == 0


async def test_deleted_accounts_purge_with_keys_and_leave_billing(store: Store) -> None:
    gone = await account(store, "gone@example.com")
    recent = await account(store, "recent@example.com")
    active = await account(store, "active@example.com")
    for n, made in enumerate((gone, recent, active, gone), start=1):
        await key(store, made.id, n)
    await store.set_account_status(gone.id, "deleted", at=T0)
    await store.set_account_status(recent.id, "deleted", at=T0 + timedelta(days=20))
    await store.insert_usage_events([event("r1", gone.id, T0)])
    await store.upsert_billing_record(BillingRecord(gone.id, "2025-02", 3, cost_usd=Decimal(2)))
    await store.record_policy_acceptance(gone.id, "v1", T0)
    for made in (detection(gone.id, T0), detection(gone.id, T0), detection(active.id, T0)):
        await store.add_security_event(made)
    cutoff = T0 + timedelta(days=10)

    dry = await store.purge_deleted_accounts(cutoff, dry_run=True)
    assert (dry.accounts, dry.keys, dry.security_events) == (1, 2, 2)
    assert await store.get_account(gone.id) is not None
    assert len(await store.list_security_events()) == 3
    done = await store.purge_deleted_accounts(cutoff)
    assert (done.accounts, done.keys, done.security_events) == (1, 2, 2)
    assert await store.list_security_events(account_id=gone.id) == []
    assert len(await store.list_security_events(account_id=active.id)) == 1
    assert await store.get_account(gone.id) is None
    assert await store.list_keys(gone.id) == []
    assert await store.get_account(recent.id) is not None
    assert await store.get_account(active.id) is not None
    (kept,) = await store.list_usage_events(account_id=gone.id)
    assert (kept.ip, kept.user_agent) == (None, None)
    assert [r.cost_usd for r in await store.list_billing_records(account_id=gone.id)] == [2]
    assert await store.policy_statuses([gone.id]) == {}


async def test_billing_purge_deletes_months_before_the_cutoff(store: Store) -> None:
    for month in ("2014-12", "2015-01", "2015-02"):
        await store.upsert_billing_record(BillingRecord("acc_a", month, updated_at=T0))
    assert await store.purge_billing_records("2015-02", dry_run=True) == 2
    assert await store.purge_billing_records("2015-02") == 2
    assert [r.month for r in await store.list_billing_records()] == ["2015-02"]


async def test_a_lease_has_one_holder_until_it_expires(store: Store) -> None:
    hour = timedelta(hours=1)
    assert await store.claim_lease("retention", "a", now=T0, until=T0 + hour)
    assert not await store.claim_lease("retention", "b", now=T0, until=T0 + hour)
    assert await store.claim_lease("retention", "a", now=T0, until=T0 + hour)
    assert await store.claim_lease("other", "b", now=T0, until=T0 + hour)
    assert await store.claim_lease("retention", "b", now=T0 + hour, until=T0 + 2 * hour)
    assert not await store.claim_lease("retention", "a", now=T0 + hour, until=T0 + 2 * hour)


# data subjects -----------------------------------------------------------------------------
async def test_recipients_are_providers_with_first_and_last_use(store: Store) -> None:
    await store.insert_usage_events([
        event("r1", "acc_a", T0, "openai"), event("r2", "acc_a", T0 + timedelta(days=2)),
        event("r3", "acc_a", T0 + timedelta(days=1), "anthropic"),
        event("r4", "acc_b", T0, "google"), event("r5", "acc_a", T0, ""),
    ])
    found = [(r.provider, r.requests, r.first_at, r.last_at)
             for r in await store.usage_recipients("acc_a")]
    assert found == [("anthropic", 1, T0 + timedelta(days=1), T0 + timedelta(days=1)),
                     ("openai", 2, T0, T0 + timedelta(days=2))]


async def test_erasure_replaces_personal_data_and_revokes_keys(store: Store) -> None:
    made = await account(store)
    other = await account(store, "other@example.com")
    first = await key(store, made.id, 1)
    await key(store, made.id, 2)
    await store.revoke_key(first.id, at=T0)
    await store.insert_usage_events([event("r1", made.id, T0), event("r2", other.id, T0)])
    for detected in (detection(made.id, T0), detection(other.id, T0)):
        await store.add_security_event(detected)
    email = f"erased-{made.id}@invalid"
    erased = await store.erase_subject(made.id, email=email, at=T0 + timedelta(days=1))
    assert (erased.keys_revoked, erased.usage_events, erased.security_events) == (2, 1, 1)
    got = await store.get_account(made.id)
    assert (got.email, got.first_name, got.last_name, got.phone, got.company, got.billing,
            got.status, got.deleted_at) == (email, "erased", "", None, None, None, "deleted",
                                            T0 + timedelta(days=1))
    keys = {k.id: k for k in await store.list_keys(made.id)}
    assert all(k.revoked and k.name == "erased" for k in keys.values())
    assert keys[first.id].revoked_at == T0  # the first revocation time is kept
    (mine,) = await store.list_usage_events(account_id=made.id)
    assert (mine.ip, mine.user_agent, mine.provider) == (None, None, "openai")
    (theirs,) = await store.list_usage_events(account_id=other.id)
    assert theirs.ip == "203.0.113.9"
    (detected,) = await store.list_security_events(account_id=made.id)
    assert (detected.client, detected.kind, detected.evidence) == (None, "many_ips",
                                                                   {"distinct_ips": 9})
    (not_mine,) = await store.list_security_events(account_id=other.id)
    assert not_mine.client == "5f1e0c2a9b7d3e41"
    again = await store.erase_subject(made.id, email=email, at=T0 + timedelta(days=5))
    assert (again.usage_events, again.security_events) == (0, 0)
    assert (await store.get_account(made.id)).deleted_at == T0 + timedelta(days=1)
    with pytest.raises(NotFoundError):
        await store.erase_subject("acc_missing", email="erased-x@invalid", at=T0)


async def test_objections_are_listed_and_resolved(store: Store) -> None:
    made = [Objection(id=new_id("obj"), account_id=acc, reason=reason, actor="cli:ops",
                      created_at=T0 + timedelta(minutes=i), decision="key suspended")
            for i, (acc, reason) in enumerate([("acc_a", "I was not abusing"),
                                               ("acc_b", "wrong block")])]
    made[1].event_id, made[1].key_id, made[1].decided_at = "sec_1", "key_1", T0
    for objection in made:
        assert await store.add_objection(objection) == objection
    assert await store.list_objections() == made  # with and without a contested event
    assert await store.list_objections(account_id="acc_b") == [made[1]]
    resolved = await store.resolve_objection(made[0].id, status="upheld", by="jwt:dpo",
                                             resolution="unblocked", at=T0 + timedelta(days=1))
    assert (resolved.status, resolved.resolved_by, resolved.resolved_at) == (
        "upheld", "jwt:dpo", T0 + timedelta(days=1))
    assert await store.list_objections(status="open") == [made[1]]
    with pytest.raises(NotFoundError):
        await store.resolve_objection("obj_x", status="rejected", by="x", resolution="",
                                      at=T0)


async def test_policy_acceptance_and_notice_are_recorded(store: Store) -> None:
    made = await account(store)
    assert await store.policy_statuses([made.id]) == {}
    await store.record_policy_notice(made.id, "2025-03", T0)
    accepted = await store.record_policy_acceptance(made.id, "2025-03", T0 + timedelta(hours=1))
    assert (accepted.version, accepted.accepted_at, accepted.notice_version,
            accepted.notice_at) == ("2025-03", T0 + timedelta(hours=1), "2025-03", T0)
    assert list(await store.policy_statuses([made.id, "acc_none"])) == [made.id]
    with pytest.raises(NotFoundError):
        await store.record_policy_acceptance("acc_missing", "v1", T0)


# audit chain -------------------------------------------------------------------------------
async def test_audit_entries_form_a_hash_chain(store: Store) -> None:
    entries = [AuditEntry("cli:ops", "subject.export", "acc_1", {"n": i, "why": "request"},
                          T0) for i in range(3)]
    for entry in entries:
        await store.append_audit(entry)
    chain = await store.list_audit_chain()
    assert [e.seq for e in chain] == [1, 2, 3]
    assert chain[0].prev_hash == GENESIS
    assert all(e.hash == entry_hash(e) for e in chain)
    assert [e.prev_hash for e in chain[1:]] == [e.hash for e in chain[:-1]]
    assert await store.list_audit_chain(after_seq=1, limit=1) == [chain[1]]
    assert await store.count_audit() == 3
    assert await store.first_unchained_audit() is None


async def test_concurrent_audit_appends_never_fork_the_chain(store: Store) -> None:
    await asyncio.gather(*(store.append_audit(AuditEntry("cli", "key.revoke", f"key_{i}"))
                           for i in range(20)))
    chain = await store.list_audit_chain()
    assert [e.seq for e in chain] == list(range(1, 21))
    assert [e.prev_hash for e in chain[1:]] == [e.hash for e in chain[:-1]]
