"""Conversion between storage records and SQLite rows (column lists, times, money, JSON).

Times are stored as ISO-8601 UTC text with millisecond precision, so text order is time order;
money as decimal text; lists and sub-records as JSON.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from onyproxy.storage.base import (
    Account,
    ApiKey,
    AuditEntry,
    BillingInfo,
    BillingLine,
    BillingRecord,
    UsageEvent,
    to_utc,
)

ACCOUNT_COLUMNS = (
    "id, email, first_name, last_name, phone, company, billing, role, status, "
    "created_at, updated_at, deleted_at, budget_usd, regions"
)
KEY_COLUMNS = (
    "id, account_id, name, prefix, hash, created_at, last_used_at, expires_at, revoked, "
    "revoked_at, rpm, tpm, concurrent, budget_usd, models, regions, suspended_at, "
    "suspended_by, suspended_reason, owner, created_by"
)
USAGE_COLUMNS = (
    "request_id, account_id, key_id, model, provider, input_tokens, output_tokens, cost_usd, "
    "status, latency_ms, ip, user_agent, created_at, surface, provider_model, attempts, "
    "error_type, cached_tokens, reasoning_tokens, ttft_ms, streamed, flags, billable, "
    "client_request_id, server_tool_uses"
)
BILLING_COLUMNS = (
    "account_id, month, requests, input_tokens, output_tokens, cost_usd, updated_at, "
    "cached_tokens, lines, closed_at"
)
AUDIT_COLUMNS = "id, at, actor, action, target, details, seq, prev_hash, hash"


def placeholders(columns: str) -> str:
    """``?, ?, ?`` for each name in a column list."""
    return ", ".join("?" for _ in columns.split(","))


def to_text(value: datetime | None) -> str | None:
    """A datetime as stored: ISO-8601 UTC with milliseconds."""
    return None if value is None else to_utc(value).isoformat(timespec="milliseconds")


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def account_value(name: str, value: Any) -> Any:
    """One account field as stored (billing info becomes JSON, money decimal text)."""
    if name == "billing":
        return _json(asdict(value) if value is not None else None)
    if name == "budget_usd":
        return _money(value)
    if name == "regions":
        return _json(value)
    return value


def account_row(a: Account) -> tuple[Any, ...]:
    """The values of :data:`ACCOUNT_COLUMNS` for ``a``."""
    return (
        a.id, a.email, a.first_name, a.last_name, a.phone, a.company,
        account_value("billing", a.billing), a.role, a.status, to_text(a.created_at),
        to_text(a.updated_at), to_text(a.deleted_at), _money(a.budget_usd),
        _json(a.regions),
    )


def account_from(row: sqlite3.Row) -> Account:
    """The account stored in ``row``."""
    billing = json.loads(row["billing"]) if row["billing"] else None
    return Account(
        id=row["id"], email=row["email"], first_name=row["first_name"],
        last_name=row["last_name"], phone=row["phone"], company=row["company"],
        billing=BillingInfo(**billing) if billing is not None else None,
        role=row["role"], status=row["status"], created_at=_time(row["created_at"]),
        updated_at=_time(row["updated_at"]), deleted_at=_time(row["deleted_at"]),
        budget_usd=_decimal(row["budget_usd"]),
        regions=None if row["regions"] is None else json.loads(row["regions"]),
    )


def key_row(k: ApiKey) -> tuple[Any, ...]:
    """The values of :data:`KEY_COLUMNS` for ``k``."""
    return (
        k.id, k.account_id, k.name, k.prefix, k.hash, to_text(k.created_at),
        to_text(k.last_used_at), to_text(k.expires_at), int(k.revoked), to_text(k.revoked_at),
        k.rpm, k.tpm, k.concurrent, _money(k.budget_usd),
        _json(k.models), _json(k.regions), to_text(k.suspended_at), k.suspended_by,
        k.suspended_reason, int(k.owner), k.created_by,
    )


def key_from(row: sqlite3.Row) -> ApiKey:
    """The key record stored in ``row``."""
    return ApiKey(
        id=row["id"], account_id=row["account_id"], name=row["name"], prefix=row["prefix"],
        hash=row["hash"], created_at=_time(row["created_at"]),
        last_used_at=_time(row["last_used_at"]), expires_at=_time(row["expires_at"]),
        revoked=bool(row["revoked"]), revoked_at=_time(row["revoked_at"]), rpm=row["rpm"],
        tpm=row["tpm"], concurrent=row["concurrent"],
        budget_usd=_decimal(row["budget_usd"]),
        models=None if row["models"] is None else json.loads(row["models"]),
        regions=None if row["regions"] is None else json.loads(row["regions"]),
        suspended_at=_time(row["suspended_at"]), suspended_by=row["suspended_by"],
        suspended_reason=row["suspended_reason"], owner=bool(row["owner"]),
        created_by=row["created_by"],
    )


def usage_row(e: UsageEvent) -> tuple[Any, ...]:
    """The values of :data:`USAGE_COLUMNS` for ``e``."""
    return (
        e.request_id, e.account_id, e.key_id, e.model, e.provider, e.input_tokens,
        e.output_tokens, str(e.cost_usd), e.status, e.latency_ms, e.ip, e.user_agent,
        to_text(e.created_at), e.surface, e.provider_model, e.attempts, e.error_type,
        e.cached_tokens, e.reasoning_tokens, e.ttft_ms, int(e.streamed), json.dumps(e.flags),
        int(e.billable), e.client_request_id, json.dumps(e.server_tool_uses),
    )


def usage_from(row: sqlite3.Row) -> UsageEvent:
    """The usage event stored in ``row``."""
    return UsageEvent(
        request_id=row["request_id"], account_id=row["account_id"], key_id=row["key_id"],
        model=row["model"], provider=row["provider"], input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"], cost_usd=Decimal(row["cost_usd"]),
        status=row["status"], latency_ms=row["latency_ms"], ip=row["ip"],
        user_agent=row["user_agent"], created_at=_time(row["created_at"]),
        surface=row["surface"], provider_model=row["provider_model"],
        attempts=row["attempts"], error_type=row["error_type"],
        cached_tokens=row["cached_tokens"], reasoning_tokens=row["reasoning_tokens"],
        ttft_ms=row["ttft_ms"], streamed=bool(row["streamed"]),
        flags=json.loads(row["flags"]), billable=bool(row["billable"]),
        client_request_id=row["client_request_id"],
        server_tool_uses=json.loads(row["server_tool_uses"]),
    )


def billing_row(b: BillingRecord) -> tuple[Any, ...]:
    """The values of :data:`BILLING_COLUMNS` for ``b``."""
    return (
        b.account_id, b.month, b.requests, b.input_tokens, b.output_tokens, str(b.cost_usd),
        to_text(b.updated_at), b.cached_tokens,
        json.dumps([{**asdict(line), "cost_usd": str(line.cost_usd)} for line in b.lines]),
        to_text(b.closed_at),
    )


def billing_from(row: sqlite3.Row) -> BillingRecord:
    """The billing record stored in ``row``."""
    return BillingRecord(
        account_id=row["account_id"], month=row["month"], requests=row["requests"],
        input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
        cost_usd=Decimal(row["cost_usd"]), updated_at=_time(row["updated_at"]),
        cached_tokens=row["cached_tokens"], closed_at=_time(row["closed_at"]),
        lines=[BillingLine(**{**line, "cost_usd": Decimal(line["cost_usd"])})
               for line in json.loads(row["lines"])],
    )


def audit_row(a: AuditEntry) -> tuple[Any, ...]:
    """The values of :data:`AUDIT_COLUMNS` for ``a``."""
    return (a.id, to_text(a.at), a.actor, a.action, a.target, json.dumps(a.details), a.seq,
            a.prev_hash, a.hash)


def audit_from(row: sqlite3.Row) -> AuditEntry:
    """The audit entry stored in ``row``."""
    return AuditEntry(
        id=row["id"], at=_time(row["at"]), actor=row["actor"], action=row["action"],
        target=row["target"], details=json.loads(row["details"]), seq=row["seq"],
        prev_hash=row["prev_hash"], hash=row["hash"],
    )
