"""Everything held about a data subject, as one JSON document (KVKK art. 11, GDPR art. 15).

The document names the account, its keys (metadata, never hashes), usage events, security
events (the security monitor's detections about the person's keys, and the automatic
suspensions), billing records, audit entries about the person, objections, privacy-policy
status, the purposes of processing, the recipients with their country, and how long each kind
of record is kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from onyproxy.admin.records import account_record, key_record, timestamp
from onyproxy.config.model import GatewayConfig
from onyproxy.privacy.purposes import PURPOSES
from onyproxy.privacy.recipients import recipients
from onyproxy.storage import Account, AuditEntry, SecurityEvent, Store, UsageEvent, utcnow

PAGE = 5000
AUDIT_LIMIT = 100_000
T = TypeVar("T")


def plain_record(record: Any) -> dict[str, Any]:
    """A storage dataclass as JSON: times RFC 3339, money as decimal strings."""
    return {name: _plain(value) for name, value in dataclasses.asdict(record).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def _every(page: Callable[[datetime | None], Awaitable[list[T]]],
                 ident: Callable[[T], str], at: Callable[[T], datetime]) -> list[T]:
    """Every record ``page(since)`` gives (oldest first, ``since`` inclusive), read page by
    page; records of the millisecond where a page ends come again and are deduplicated."""
    records: list[T] = []
    seen: set[str] = set()
    since: datetime | None = None
    while True:
        found = await page(since)
        fresh = [r for r in found if ident(r) not in seen]
        records += fresh
        seen.update(ident(r) for r in fresh)
        if len(found) < PAGE or not fresh:
            return records
        since = at(found[-1])


async def all_usage_events(store: Store, account_id: str) -> list[UsageEvent]:
    """Every usage event of the account, oldest first, read page by page."""
    return await _every(
        lambda since: store.list_usage_events(account_id=account_id, since=since, limit=PAGE),
        lambda e: e.request_id, lambda e: e.created_at)


async def all_security_events(store: Store, account_id: str) -> list[SecurityEvent]:
    """Every security event about the account's keys, oldest first, read page by page."""
    return await _every(
        lambda since: store.list_security_events(account_id=account_id, since=since,
                                                 limit=PAGE),
        lambda e: e.id, lambda e: e.at)


async def audit_about(store: Store, account_id: str, key_ids: list[str]) -> list[AuditEntry]:
    """Audit entries about the account or its keys, or made with the account's admin key."""
    found: dict[str, AuditEntry] = {}
    for target in [account_id, *key_ids]:
        for entry in await store.list_audit(target=target, limit=AUDIT_LIMIT):
            found[entry.id] = entry
    for entry in await store.list_audit(actor=f"account:{account_id}", limit=AUDIT_LIMIT):
        found[entry.id] = entry
    return sorted(found.values(), key=lambda e: (e.seq or 0, e.at))


def _audit_record(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "at": timestamp(entry.at), "actor": entry.actor,
            "action": entry.action, "target": entry.target, "details": entry.details}


async def export_subject(store: Store, config: GatewayConfig, account: Account) -> dict[str, Any]:
    """The export document for ``account``."""
    keys = await store.list_keys(account.id)
    policy = (await store.policy_statuses([account.id])).get(account.id)
    retention = config.retention
    return {
        "generated_at": timestamp(utcnow()),
        "controller": config.privacy.controller or None,
        "account": {**account_record(account), "regions": account.regions},
        "keys": [{**key_record(k), "regions": k.regions} for k in keys],
        "usage_events": [plain_record(e) for e in await all_usage_events(store, account.id)],
        "security_events": [plain_record(e) for e in
                            await all_security_events(store, account.id)],
        "billing_records": [plain_record(r) for r in
                            await store.list_billing_records(account_id=account.id)],
        "audit_entries": [_audit_record(e) for e in
                          await audit_about(store, account.id, [k.id for k in keys])],
        "objections": [plain_record(o) for o in
                       await store.list_objections(account_id=account.id)],
        "privacy_policy": {
            "current_version": config.privacy.policy_version or None,
            "accepted_version": policy.version if policy else None,
            "accepted_at": timestamp(policy.accepted_at) if policy else None,
        },
        "purposes": list(PURPOSES),
        "recipients": await recipients(store, config, account.id),
        "retention": {
            "usage_events_days": retention.usage_events_days,
            "security_events_days": retention.usage_events_days,
            "account_after_deletion_days": retention.deleted_accounts_days,
            "billing_years": retention.billing_years,
            "request_content": "not stored: processed in memory only",
        },
    }
