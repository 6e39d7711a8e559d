"""Accounts and keys as JSON, and the input parsing the admin API and the CLI share.

A key's JSON never carries its hash; the secret appears only in :func:`issued_record`, in the
one answer that creates (or rotates) the key.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from onyproxy.accounts import ValidationError
from onyproxy.keys import IssuedKey
from onyproxy.storage import Account, ApiKey


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 UTC with a ``Z``: ``2026-01-31T09:30:00.123Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def money(value: Decimal | None) -> str | None:
    """USD amounts travel as strings, so no client turns them into binary floats."""
    return None if value is None else str(value)


def account_record(account: Account) -> dict[str, Any]:
    """The JSON of an account."""
    billing = account.billing
    return {
        "id": account.id,
        "email": account.email,
        "name": account.name,
        "first_name": account.first_name,
        "last_name": account.last_name,
        "phone": account.phone,
        "company": account.company,
        "billing": None if billing is None else {"tax_id": billing.tax_id,
                                                 "address": billing.address},
        "role": account.role,
        "status": account.status,
        "created_at": timestamp(account.created_at),
        "updated_at": timestamp(account.updated_at),
        "deleted_at": timestamp(account.deleted_at),
        "regions": account.regions,
        "budget_usd": money(account.budget_usd),
    }


def key_record(key: ApiKey) -> dict[str, Any]:
    """The JSON of a key: its display prefix, never its hash."""
    return {
        "id": key.id,
        "account_id": key.account_id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": timestamp(key.created_at),
        "last_used_at": timestamp(key.last_used_at),
        "expires_at": timestamp(key.expires_at),
        "revoked": key.revoked,
        "revoked_at": timestamp(key.revoked_at),
        "rpm": key.rpm,
        "tpm": key.tpm,
        "concurrent": key.concurrent,
        "budget_usd": money(key.budget_usd),
        "models": key.models,
        "regions": key.regions,
        "suspended_at": timestamp(key.suspended_at),
        "suspended_by": key.suspended_by,
        "suspended_reason": key.suspended_reason,
        "owner": key.owner,
        "created_by": key.created_by,
    }


def suspension_details(key: ApiKey) -> dict[str, Any]:
    """Audit details of lifting ``key``'s suspension: the account and what was lifted (the
    suspension's own audit entry, by ``system:security`` or an admin, has the evidence)."""
    return {"account_id": key.account_id, "suspended_at": timestamp(key.suspended_at),
            "suspended_by": key.suspended_by, "suspended_reason": key.suspended_reason}


def issued_record(issued: IssuedKey) -> dict[str, Any]:
    """A key just created, with its secret under ``"key"``: shown this once."""
    return {**key_record(issued.record), "key": issued.secret}


def parse_expiry(value: Any, field: str = "expires_at") -> datetime | None:
    """``2026-12-31`` (the key stops working at 00:00 UTC that day) or an ISO 8601 time; a
    time without an offset is UTC. ``None``/empty means no expiry."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError(field, "must be a date (YYYY-MM-DD) or an ISO 8601 time")
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationError(field, f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 "
                                     f"time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_models(value: str | None) -> list[str] | None:
    """``"a,b"`` → ``["a", "b"]`` (the CLI's ``--models``); empty means every model."""
    if value is None or not value.strip():
        return None
    return [name.strip() for name in value.split(",") if name.strip()]
