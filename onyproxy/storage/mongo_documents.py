"""Conversion between storage records and MongoDB documents.

Times are BSON dates (UTC, milliseconds), money is Decimal128, ids of accounts and keys are the
documents' ``_id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from bson import Decimal128

from onyproxy.storage.base import (
    Account,
    ApiKey,
    AuditEntry,
    BillingInfo,
    BillingLine,
    BillingRecord,
    UsageEvent,
    UsageTotal,
    check_dimensions,
    to_utc,
)


def to_time(value: datetime | None) -> datetime | None:
    """A datetime as BSON keeps it: UTC, milliseconds."""
    return None if value is None else to_utc(value)


def to_money(value: Decimal | None) -> Decimal128 | None:
    """Money as BSON Decimal128 (exact, summable server-side)."""
    return None if value is None else Decimal128(value)


def to_decimal(value: Any) -> Decimal | None:
    """Decimal128 read back as Decimal."""
    return value.to_decimal() if isinstance(value, Decimal128) else value


def account_doc(a: Account) -> dict[str, Any]:
    """The document stored for an account (``_id`` is the account id)."""
    doc = asdict(a)
    doc["_id"] = doc.pop("id")
    for name in ("created_at", "updated_at", "deleted_at"):
        doc[name] = to_time(doc[name])
    doc["budget_usd"] = to_money(a.budget_usd)
    return doc


def account_from(doc: Mapping[str, Any]) -> Account:
    """The account a document holds."""
    fields = {k: v for k, v in doc.items() if k != "_id"}
    billing = fields.pop("billing", None)
    fields["budget_usd"] = to_decimal(fields.get("budget_usd"))
    return Account(
        id=doc["_id"], billing=BillingInfo(**billing) if billing is not None else None, **fields
    )


def key_doc(k: ApiKey) -> dict[str, Any]:
    """The document stored for a key record (``_id`` is the key id)."""
    doc = asdict(k)
    doc["_id"] = doc.pop("id")
    for name in ("created_at", "last_used_at", "expires_at", "revoked_at", "suspended_at"):
        doc[name] = to_time(doc[name])
    doc["budget_usd"] = to_money(k.budget_usd)
    return doc


def key_from(doc: Mapping[str, Any]) -> ApiKey:
    """The key record a document holds."""
    fields = {k: v for k, v in doc.items() if k != "_id"}
    fields["budget_usd"] = to_decimal(fields.get("budget_usd"))
    return ApiKey(id=doc["_id"], **fields)


def usage_doc(e: UsageEvent) -> dict[str, Any]:
    """The document stored for a usage event."""
    doc = asdict(e)
    doc["cost_usd"] = to_money(e.cost_usd)
    doc["created_at"] = to_time(e.created_at)
    return doc


def usage_from(doc: Mapping[str, Any]) -> UsageEvent:
    """The usage event a document holds."""
    fields = {k: v for k, v in doc.items() if k != "_id"}
    fields["cost_usd"] = to_decimal(fields["cost_usd"])
    return UsageEvent(**fields)


def billing_doc(b: BillingRecord) -> dict[str, Any]:
    """The document stored for a billing record."""
    doc = asdict(b)
    doc["cost_usd"] = to_money(b.cost_usd)
    doc["updated_at"] = to_time(b.updated_at)
    doc["closed_at"] = to_time(b.closed_at)
    for line in doc["lines"]:
        line["cost_usd"] = to_money(line["cost_usd"])
    return doc


def billing_from(doc: Mapping[str, Any]) -> BillingRecord:
    """The billing record a document holds."""
    fields = {k: v for k, v in doc.items() if k != "_id"}
    fields["cost_usd"] = to_decimal(fields["cost_usd"])
    fields["lines"] = [BillingLine(**{**line, "cost_usd": to_decimal(line["cost_usd"])})
                       for line in fields.get("lines") or ()]
    return BillingRecord(**fields)


def audit_doc(a: AuditEntry) -> dict[str, Any]:
    """The document stored for an audit entry (an ObjectId ``_id`` keeps insertion order)."""
    doc = asdict(a)
    doc["at"] = to_time(a.at)
    return doc


def audit_from(doc: Mapping[str, Any]) -> AuditEntry:
    """The audit entry a document holds."""
    return AuditEntry(**{k: v for k, v in doc.items() if k != "_id"})


def time_range(since: datetime | None, until: datetime | None) -> dict[str, datetime]:
    """A ``created_at`` filter: ``since`` inclusive, ``until`` exclusive."""
    bounds: dict[str, datetime] = {}
    if since is not None:
        bounds["$gte"] = to_utc(since)
    if until is not None:
        bounds["$lt"] = to_utc(until)
    return bounds


#: The field (or expression) behind each usage dimension; a day is the UTC date.
_DIMENSIONS: dict[str, Any] = {
    "account": "$account_id", "key": "$key_id", "model": "$model", "provider": "$provider",
    "day": {"$dateToString": {"format": "%Y-%m-%d", "date": "$created_at"}},
}
# Events written before ``billable`` existed count as billable.
_BILLABLE = {"$ne": ["$billable", False]}


def totals_pipeline(group_by: Sequence[str], query: dict[str, Any],
                    billable_only: bool) -> list[dict[str, Any]]:
    """The aggregation behind :meth:`Store.usage_totals`; Decimal128 sums stay exact."""
    check_dimensions(group_by)
    if billable_only:
        query = {**query, "billable": {"$ne": False}}
    group_id = {f"g{i}": _DIMENSIONS[d] for i, d in enumerate(group_by)} or None
    group: dict[str, Any] = {
        "_id": group_id, "requests": {"$sum": 1},
        "billed_requests": {"$sum": {"$cond": [_BILLABLE, 1, 0]}},
        "input_tokens": {"$sum": "$input_tokens"}, "output_tokens": {"$sum": "$output_tokens"},
        "cached_tokens": {"$sum": "$cached_tokens"},
        "reasoning_tokens": {"$sum": "$reasoning_tokens"}, "cost_usd": {"$sum": "$cost_usd"},
    }
    order = {f"_id.g{i}": 1 for i in range(len(group_by))} or {"_id": 1}
    return [{"$match": query}, {"$group": group}, {"$sort": order}]


def total_from(doc: Mapping[str, Any], group_by: Sequence[str]) -> UsageTotal:
    """The total one aggregation result holds."""
    keys = doc["_id"] or {}
    cost = to_decimal(doc["cost_usd"])
    return UsageTotal(
        group={d: keys.get(f"g{i}") for i, d in enumerate(group_by)},
        requests=doc["requests"], billed_requests=doc["billed_requests"],
        input_tokens=doc["input_tokens"], output_tokens=doc["output_tokens"],
        cached_tokens=doc["cached_tokens"], reasoning_tokens=doc["reasoning_tokens"],
        cost_usd=cost if isinstance(cost, Decimal) else Decimal(cost or 0),
    )
