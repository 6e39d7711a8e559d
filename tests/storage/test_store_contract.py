"""The contract every Store backend keeps; runs once on SQLite and once on MongoDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from onyproxy.keys import create_key
from onyproxy.storage import (
    Account,
    ApiKey,
    AuditEntry,
    BillingInfo,
    BillingRecord,
    ConflictError,
    NotFoundError,
    StorageError,
    Store,
    UsageEvent,
    new_id,
    utcnow,
)
from onyproxy.storage.mongo import MongoStore

T0 = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


def account(email: str = "ada@example.com", **fields: object) -> Account:
    return Account(id=new_id("acc"), email=email, first_name="Ada", last_name="Lovelace",
                   **fields)  # type: ignore[arg-type]


def key(account_id: str, key_hash: str = "h" * 64, **fields: object) -> ApiKey:
    return ApiKey(id=new_id("key"), account_id=account_id, name="ci", prefix="ony-AbCdEfGh",
                  hash=key_hash, **fields)  # type: ignore[arg-type]


def event(request_id: str, account_id: str = "acc_1", key_id: str = "key_1",
          at: datetime = T0, **fields: object) -> UsageEvent:
    return UsageEvent(request_id=request_id, account_id=account_id, key_id=key_id,
                      model="gpt-4o", provider="openai", created_at=at,
                      **fields)  # type: ignore[arg-type]


# lifecycle ---------------------------------------------------------------------------------
async def test_ping_answers_true_while_open(store: Store) -> None:
    assert await store.ping() is True


async def test_ping_answers_false_after_close(store: Store) -> None:
    await store.close()
    assert await store.ping() is False


# accounts ----------------------------------------------------------------------------------
async def test_created_account_reads_back_identically(store: Store) -> None:
    billing = BillingInfo(tax_id="1234567890", address="Moda Cad. 1\nKadikoy, Istanbul")
    created = account(phone="+905321234567", company="Acme A.Ş.", billing=billing, role="admin",
                      created_at=T0, updated_at=T0)
    assert await store.create_account(created) == created
    assert await store.get_account(created.id) == created
    assert await store.get_account_by_email("ada@example.com") == created


async def test_account_times_are_timezone_aware_utc(store: Store) -> None:
    created = await store.create_account(account())
    got = await store.get_account(created.id)
    assert got is not None and got.created_at.tzinfo is not None
    assert got.created_at.utcoffset() == timedelta(0)


async def test_unknown_account_reads_as_none(store: Store) -> None:
    assert await store.get_account("acc_missing") is None
    assert await store.get_account_by_email("nobody@example.com") is None


async def test_duplicate_email_is_a_conflict_on_email(store: Store) -> None:
    await store.create_account(account())
    with pytest.raises(ConflictError) as caught:
        await store.create_account(account())
    assert caught.value.field == "email"


async def test_accounts_list_oldest_first_with_status_filter_and_paging(store: Store) -> None:
    made = [account(f"u{i}@example.com", created_at=T0 + timedelta(seconds=i)) for i in range(4)]
    for a in reversed(made):
        await store.create_account(a)
    await store.set_account_status(made[1].id, "suspended")
    assert [a.id for a in await store.list_accounts()] == [a.id for a in made]
    assert [a.id for a in await store.list_accounts(limit=2, offset=1)] == [made[1].id, made[2].id]
    assert [a.id for a in await store.list_accounts(status="suspended")] == [made[1].id]


async def test_update_account_sets_fields_and_clears_optional_ones(store: Store) -> None:
    created = await store.create_account(account(phone="+905321234567", created_at=T0,
                                                 updated_at=T0))
    billing = BillingInfo(tax_id="DE123456789", address="Berlin")
    updated = await store.update_account(
        created.id, {"company": "Acme GmbH", "billing": billing, "phone": None, "last_name": "K"}
    )
    assert (updated.company, updated.billing, updated.phone, updated.last_name) == (
        "Acme GmbH", billing, None, "K")
    assert updated.updated_at > T0
    assert await store.get_account(created.id) == updated
    cleared = await store.update_account(created.id, {"billing": None})
    assert cleared.billing is None


async def test_update_account_to_a_taken_email_is_a_conflict(store: Store) -> None:
    await store.create_account(account("a@example.com"))
    other = await store.create_account(account("b@example.com"))
    with pytest.raises(ConflictError):
        await store.update_account(other.id, {"email": "a@example.com"})


async def test_update_of_unknown_account_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.update_account("acc_missing", {"company": "X"})
    with pytest.raises(NotFoundError):
        await store.set_account_status("acc_missing", "suspended")


async def test_update_account_refuses_fields_it_does_not_own(store: Store) -> None:
    created = await store.create_account(account())
    with pytest.raises(ValueError, match="status"):
        await store.update_account(created.id, {"status": "deleted"})


async def test_deleting_stamps_deleted_at_and_reactivating_clears_it(store: Store) -> None:
    created = await store.create_account(account())
    deleted = await store.set_account_status(created.id, "deleted", at=T0)
    assert (deleted.status, deleted.deleted_at) == ("deleted", T0)
    active = await store.set_account_status(created.id, "active")
    assert (active.status, active.deleted_at) == ("active", None)


async def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.create_account(account(created_at=datetime(2025, 1, 1)))


# api keys ----------------------------------------------------------------------------------
async def test_key_record_reads_back_with_limits_budget_and_models(store: Store) -> None:
    owner = await store.create_account(account())
    made = key(owner.id, created_at=T0, expires_at=T0 + timedelta(days=30), rpm=60, tpm=10_000,
               concurrent=4, budget_usd=Decimal("12.3400"), models=["gpt-4o", "claude-sonnet"])
    assert await store.create_key(made) == made
    got = await store.get_key_by_hash("h" * 64)
    assert got == made and got is not None
    assert isinstance(got.budget_usd, Decimal) and str(got.budget_usd) == "12.3400"
    assert await store.get_key(made.id) == made


async def test_an_owner_key_and_its_creator_read_back(store: Store) -> None:
    holder = await store.create_account(account())
    parent = await store.create_key(key(holder.id, owner=True))
    child = await store.create_key(key(holder.id, "c" * 64, created_by=parent.id))
    assert (await store.get_key(parent.id)).owner is True
    assert (await store.get_key_by_hash("c" * 64)) == child
    assert (child.owner, child.created_by) == (False, parent.id)
    assert {k.id: (k.owner, k.created_by) for k in await store.list_keys(holder.id)} == {
        parent.id: (True, None), child.id: (False, parent.id)}


async def test_key_without_limits_keeps_none(store: Store) -> None:
    owner = await store.create_account(account())
    made = await store.create_key(key(owner.id))
    assert (made.rpm, made.budget_usd, made.models, made.revoked) == (None, None, None, False)


async def test_key_for_unknown_account_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.create_key(key("acc_missing"))


async def test_duplicate_key_hash_is_a_conflict(store: Store) -> None:
    owner = await store.create_account(account())
    await store.create_key(key(owner.id))
    with pytest.raises(ConflictError) as caught:
        await store.create_key(key(owner.id))
    assert caught.value.field == "hash"


async def test_keys_list_by_account_optionally_without_revoked(store: Store) -> None:
    owner = await store.create_account(account())
    other = await store.create_account(account("other@example.com"))
    first = await store.create_key(key(owner.id, "a" * 64, created_at=T0))
    second = await store.create_key(key(owner.id, "b" * 64, created_at=T0 + timedelta(1)))
    await store.create_key(key(other.id, "c" * 64))
    await store.revoke_key(first.id)
    assert [k.id for k in await store.list_keys(owner.id)] == [first.id, second.id]
    assert [k.id for k in await store.list_keys(owner.id, include_revoked=False)] == [second.id]


async def test_revoking_twice_keeps_the_first_revocation_time(store: Store) -> None:
    owner = await store.create_account(account())
    made = await store.create_key(key(owner.id))
    revoked = await store.revoke_key(made.id, at=T0)
    assert (revoked.revoked, revoked.revoked_at) == (True, T0)
    again = await store.revoke_key(made.id, at=T0 + timedelta(hours=1))
    assert again.revoked_at == T0
    with pytest.raises(NotFoundError):
        await store.revoke_key("key_missing")


async def test_touch_key_records_last_use_and_never_goes_backwards(store: Store) -> None:
    owner = await store.create_account(account())
    made = await store.create_key(key(owner.id))
    await store.touch_key(made.id, T0 + timedelta(minutes=5))
    await store.touch_key(made.id, T0)
    got = await store.get_key(made.id)
    assert got is not None and got.last_used_at == T0 + timedelta(minutes=5)
    await store.touch_key("key_missing", T0)  # a vanished key is not an error


async def test_delete_key_removes_it_once(store: Store) -> None:
    owner = await store.create_account(account())
    made = await store.create_key(key(owner.id))
    assert await store.delete_key(made.id) is True
    assert await store.delete_key(made.id) is False
    assert await store.get_key_by_hash(made.hash) is None


async def test_key_secret_never_reaches_the_database(backend: Any, store: Store) -> None:
    owner = await store.create_account(account())
    issued = await create_key(store, owner.id, pepper="contract-pepper", name="ci")
    secret_tail = issued.secret[len(issued.record.prefix):]
    if isinstance(store, MongoStore):
        dumped = ""
        for name in await store.db.list_collection_names():
            dumped += repr(await store.db[name].find().to_list())
    else:
        await store.close()
        assert backend.sqlite_path is not None
        files = backend.sqlite_path.parent.glob(backend.sqlite_path.name + "*")
        dumped = "".join(p.read_bytes().decode("latin-1") for p in files)
    assert issued.record.hash in dumped
    assert issued.secret not in dumped and secret_tail not in dumped


# usage events ------------------------------------------------------------------------------
async def test_usage_insert_returns_only_new_events_and_skips_duplicates(store: Store) -> None:
    assert await store.insert_usage_events([event("r1"), event("r2")]) == 2
    assert await store.insert_usage_events([event("r2"), event("r3"), event("r3")]) == 1
    assert await store.insert_usage_events([]) == 0
    assert [e.request_id for e in await store.list_usage_events()] == ["r1", "r2", "r3"]


async def test_concurrent_overlapping_usage_inserts_store_each_request_once(store: Store) -> None:
    batches = [[event(f"r{(i + j) % 10}") for j in range(5)] for i in range(8)]
    counts = await asyncio.gather(*(store.insert_usage_events(b) for b in batches))
    assert sum(counts) == len({e.request_id for b in batches for e in b}) == 10
    assert len(await store.list_usage_events()) == 10


async def test_usage_event_reads_back_identically(store: Store) -> None:
    made = event("r1", input_tokens=1200, output_tokens=345, cost_usd=Decimal("0.0123450"),
                 status=429, latency_ms=812, ip="203.0.113.9", user_agent="openai-python/1.50")
    await store.insert_usage_events([made])
    assert await store.list_usage_events() == [made]


async def test_usage_query_by_account_key_and_half_open_time_range(store: Store) -> None:
    await store.insert_usage_events([
        event("r1", "acc_a", "key_1", T0),
        event("r2", "acc_a", "key_2", T0 + timedelta(hours=1)),
        event("r3", "acc_b", "key_3", T0 + timedelta(hours=2)),
        event("r4", "acc_a", "key_1", T0 + timedelta(hours=3)),
    ])

    async def ids(**query: object) -> list[str]:
        return [e.request_id for e in await store.list_usage_events(**query)]  # type: ignore[arg-type]

    assert await ids(account_id="acc_a") == ["r1", "r2", "r4"]
    assert await ids(key_id="key_1") == ["r1", "r4"]
    assert await ids(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3)) == ["r2", "r3"]
    assert await ids(account_id="acc_a", since=T0 + timedelta(minutes=1)) == ["r2", "r4"]
    assert await ids(limit=2) == ["r1", "r2"]


# billing -----------------------------------------------------------------------------------
async def test_billing_upsert_replaces_the_month_totals(store: Store) -> None:
    await store.upsert_billing_record(BillingRecord("acc_a", "2025-03", 10, 100, 50,
                                                    Decimal("1.25"), T0))
    latest = BillingRecord("acc_a", "2025-03", 12, 130, 70, Decimal("1.5000"), T0)
    await store.upsert_billing_record(latest)
    assert await store.list_billing_records() == [latest]


async def test_billing_records_filter_and_order_by_month_then_account(store: Store) -> None:
    for acc, month in [("acc_b", "2025-02"), ("acc_a", "2025-03"), ("acc_a", "2025-02")]:
        await store.upsert_billing_record(BillingRecord(acc, month, cost_usd=Decimal(1),
                                                        updated_at=T0))
    listed = [(r.month, r.account_id) for r in await store.list_billing_records()]
    assert listed == [("2025-02", "acc_a"), ("2025-02", "acc_b"), ("2025-03", "acc_a")]
    assert [r.month for r in await store.list_billing_records(account_id="acc_a")] == [
        "2025-02", "2025-03"]
    assert [r.account_id for r in await store.list_billing_records(month="2025-02")] == [
        "acc_a", "acc_b"]


# audit log ---------------------------------------------------------------------------------
async def test_audit_entries_list_in_order_with_filters(store: Store) -> None:
    entries = [
        AuditEntry("admin:acc_x", "account.create", "acc_1", {"email": "a@example.com"}, T0),
        AuditEntry("cli", "key.revoke", "key_9", {}, T0),
        AuditEntry("admin:acc_x", "subject.export", "acc_1", {"items": 3, "ok": True}, T0),
    ]
    for entry in entries:
        await store.append_audit(entry)
    assert await store.list_audit() == entries
    assert await store.list_audit(target="acc_1") == [entries[0], entries[2]]
    assert await store.list_audit(actor="cli") == [entries[1]]
    assert await store.list_audit(limit=1) == [entries[0]]


async def test_closed_store_refuses_work_with_storage_error(store: Store) -> None:
    await store.close()
    with pytest.raises(StorageError):
        await store.get_account("acc_x")


async def test_now_has_millisecond_precision() -> None:
    assert utcnow().microsecond % 1000 == 0
