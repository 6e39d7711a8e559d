"""Retention: cut-offs, a pass at a moved clock on SQLite and MongoDB, the background job (one
process per interval through the lease), and `onyproxy retention run` as a user runs it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from privacy_env import (
    PEPPER,
    Cli,
    backend,
    storage_url,
    store_on,
    usage,
    write_config,
)
from storage.conftest import mongo_url  # noqa: F401 (the session's SecantusDB)

from onyproxy.config.model import RetentionConfig
from onyproxy.retention import RETENTION_JOB, RetentionJob, cutoffs, run_retention
from onyproxy.storage import (
    Account,
    ApiKey,
    BillingRecord,
    SecurityEvent,
    Store,
    new_id,
    utcnow,
)

__all__ = ["backend", "store_on"]  # fixtures

NOW = datetime(2035, 3, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


async def seed(store: Store, now: datetime) -> dict[str, str]:
    """Records on both sides of every cut-off of the default retention, seen from ``now``."""
    ids = {}
    for name, deleted_days_ago in (("gone", 31), ("recent", 29), ("active", None)):
        account = await store.create_account(Account(id=new_id("acc"), first_name=name,
                                                     email=f"{name}@example.com"))
        await store.create_key(ApiKey(id=new_id("key"), account_id=account.id, name="k",
                                      prefix="ony-x", hash=f"{name:x<64}"))
        if deleted_days_ago is not None:
            await store.set_account_status(account.id, "deleted",
                                           at=now - deleted_days_ago * DAY)
        ids[name] = account.id
    await store.insert_usage_events([
        usage("old", ids["active"], "istanbul", now - 91 * DAY),
        usage("older", ids["gone"], "istanbul", now - 200 * DAY),
        usage("fresh", ids["active"], "istanbul", now - 89 * DAY),
        usage("gone-fresh", ids["gone"], "istanbul", now - 10 * DAY),
    ])
    for month in ("2025-01", "2025-02", "2025-03", "2025-04"):
        await store.upsert_billing_record(BillingRecord(ids["gone"], month, 1,
                                                        cost_usd=Decimal("1.5")))
    for name, account_id, days_ago in (("sec-old", ids["active"], 91),
                                       ("sec-fresh", ids["active"], 89),
                                       ("sec-gone", ids["gone"], 10),
                                       ("sec-addr", None, 95)):
        await store.add_security_event(detection(name, account_id, now - days_ago * DAY))
    return ids


def detection(event_id: str, account_id: str | None, at: datetime) -> SecurityEvent:
    """A security event: about an account's key, or (no account) about a client address."""
    if account_id is None:
        return SecurityEvent(id=event_id, kind="auth_failures", at=at,
                             client="0123456789abcdef", evidence={"failures": 20})
    return SecurityEvent(id=event_id, kind="usage_spike", at=at, key_id="key_x",
                         account_id=account_id, evidence={"per_minute": 900})


def test_cutoffs_follow_the_config() -> None:
    limits = cutoffs(RetentionConfig(), NOW)
    assert limits.usage_events == NOW - 90 * DAY
    assert limits.deleted_accounts == NOW - 30 * DAY
    assert limits.billing_month == "2025-03"  # ten years back; March 2025 is kept
    short = cutoffs(RetentionConfig(usage_events_days=7, deleted_accounts_days=0,
                                    billing_years=1), NOW)
    assert (short.usage_events, short.deleted_accounts, short.billing_month) == (
        NOW - 7 * DAY, NOW, "2034-03")


async def test_a_pass_at_a_moved_clock_deletes_what_is_past_its_period(store_on) -> None:
    ids = await seed(store_on, NOW)
    dry = await run_retention(store_on, RetentionConfig(), now=NOW, dry_run=True)
    assert (dry.usage_events, dry.security_events, dry.accounts, dry.keys,
            dry.billing_records) == (2, 3, 1, 1, 2)
    assert len(await store_on.list_usage_events()) == 4  # a dry run deletes nothing
    assert len(await store_on.list_security_events()) == 4

    done = await run_retention(store_on, RetentionConfig(), now=NOW)
    assert (done.usage_events, done.security_events, done.accounts, done.keys,
            done.billing_records) == (2, 3, 1, 1, 2)
    assert sorted(e.request_id for e in await store_on.list_usage_events()) == [
        "fresh", "gone-fresh"]
    # past the usage events' 90 days (with or without an account), and the purged account's
    assert [e.id for e in await store_on.list_security_events()] == ["sec-fresh"]
    assert await store_on.get_account(ids["gone"]) is None
    assert await store_on.list_keys(ids["gone"]) == []
    assert await store_on.get_account(ids["recent"]) is not None
    assert len(await store_on.list_keys(ids["active"])) == 1
    (kept,) = await store_on.list_usage_events(account_id=ids["gone"])
    assert (kept.ip, kept.user_agent) == (None, None)  # anonymised, counted in billing
    assert [r.month for r in await store_on.list_billing_records()] == ["2025-03", "2025-04"]

    again = await run_retention(store_on, RetentionConfig(), now=NOW)
    assert (again.usage_events, again.security_events, again.accounts,
            again.billing_records) == (0, 0, 0, 0)
    later = await run_retention(store_on, RetentionConfig(), now=NOW + 2 * DAY)
    assert later.accounts == 1  # "recent" is now past its 30 days


async def test_only_one_job_per_interval_runs_a_pass(store_on) -> None:
    config = RetentionConfig(job_interval_s=3600)
    first, second = RetentionJob(store_on, config), RetentionJob(store_on, config)
    assert await first.tick() is not None
    assert await second.tick() is None
    assert await first.tick() is not None  # its own lease does not lock it out
    assert (first.passes, second.passes) == (2, 0)


async def test_the_job_audits_what_it_removed(store_on) -> None:
    await store_on.insert_usage_events([usage("old", "acc_x", "istanbul",
                                              utcnow() - 100 * DAY)])
    await store_on.add_security_event(detection("sec-old", None, utcnow() - 100 * DAY))
    job = RetentionJob(store_on, RetentionConfig(job_interval_s=60))
    report = await job.tick()
    assert report is not None and (report.usage_events, report.security_events) == (1, 1)
    (entry,) = await store_on.list_audit(actor="gateway:retention")
    assert (entry.action, entry.details) == ("retention.run",
                                             {"usage_events": 1, "security_events": 1})
    await job.tick()  # nothing removed: no second entry
    assert len(await store_on.list_audit(actor="gateway:retention")) == 1


async def test_the_gateway_runs_the_job_in_the_background(gateway, backend, tmp_path,
                                                          store_on) -> None:
    await store_on.insert_usage_events([usage("old", "acc_x", "istanbul",
                                              utcnow() - 100 * DAY)])
    server = await gateway({"storage": {"url": storage_url(backend)},
                            "security": {"key_pepper": PEPPER},
                            "retention": {"job_interval_s": 0.2}})
    job = server.app[RETENTION_JOB]
    for _ in range(100):
        if job.passes:
            break
        await asyncio.sleep(0.05)
    assert job.passes >= 1
    assert await store_on.list_usage_events() == []


async def test_a_failing_store_does_not_stop_the_job(store_on, caplog) -> None:
    job = RetentionJob(store_on, RetentionConfig(job_interval_s=60))
    await store_on.close()
    assert await job.tick() is None
    assert "retention pass failed" in caplog.text


@pytest.mark.slow
async def test_retention_run_from_the_cli(backend, tmp_path, store_on) -> None:
    now = utcnow()
    await seed(store_on, now)
    cli = Cli(write_config(tmp_path, backend))
    dry = await asyncio.to_thread(cli.json, "retention", "run", "--dry-run")
    kinds = ("usage_events", "security_events", "accounts", "keys", "dry_run")
    assert {k: dry[k] for k in kinds} == {
        "usage_events": 2, "security_events": 3, "accounts": 1, "keys": 1, "dry_run": True}
    assert len(await store_on.list_usage_events()) == 4
    assert len(await store_on.list_security_events()) == 4
    table = (await asyncio.to_thread(cli.run, "retention", "run")).stdout.splitlines()
    assert table[0].split() == ["KIND", "DELETED"]
    assert table[1].split() == ["usage", "events", "2"]
    assert table[2].split() == ["security", "events", "3"]
    assert len(await store_on.list_usage_events()) == 2
    assert [e.id for e in await store_on.list_security_events()] == ["sec-fresh"]
    (entry,) = [e for e in await store_on.list_audit() if e.action == "retention.run"]
    assert entry.actor.startswith("cli:")
    assert (entry.details["usage_events"], entry.details["security_events"]) == (2, 3)
