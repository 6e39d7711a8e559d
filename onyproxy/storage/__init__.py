"""Storage: one narrow async repository interface, SQLite and MongoDB behind it.

Open a store from the ``storage.url`` of the config::

    store = await open_store("sqlite:///./data/onyproxy.db")
    store = await open_store("mongodb://db1:27017/onyproxy", retention_days=90)
"""

from __future__ import annotations

from typing import Any

from onyproxy.storage.base import (
    Account,
    AccountStatus,
    ApiKey,
    AuditEntry,
    BillingInfo,
    BillingLine,
    BillingRecord,
    ConflictError,
    NotFoundError,
    Role,
    StorageError,
    Store,
    UsageEvent,
    UsageTotal,
    new_id,
    to_utc,
    utcnow,
)
from onyproxy.storage.security import SecurityEvent

__all__ = [
    "Account",
    "AccountStatus",
    "ApiKey",
    "AuditEntry",
    "BillingInfo",
    "BillingLine",
    "BillingRecord",
    "ConflictError",
    "NotFoundError",
    "Role",
    "SecurityEvent",
    "StorageError",
    "Store",
    "UsageEvent",
    "UsageTotal",
    "new_id",
    "open_store",
    "to_utc",
    "utcnow",
]

SCHEMES = ("sqlite", "mongodb", "mongodb+srv")


def url_scheme(url: str) -> str:
    """The scheme of a storage URL, lower-cased (``""`` when it has none)."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


async def open_store(url: str, **options: Any) -> Store:
    """Open the store ``url`` names, ready to use (schema migrated, indexes created).

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``sqlite:///:memory:``
    open the embedded store; ``mongodb://`` and ``mongodb+srv://`` open MongoDB. ``options`` go
    to the backend (``retention_days``, ``billing_retention_days``, and for MongoDB
    ``database`` and ``server_selection_timeout_ms``). Raises :class:`StorageError` when the
    scheme is unknown or the database cannot be opened.
    """
    scheme = url_scheme(url)
    if scheme == "sqlite":
        from onyproxy.storage.sqlite import SQLiteStore

        return await SQLiteStore.open(url, **options)
    if scheme in ("mongodb", "mongodb+srv"):
        from onyproxy.storage.mongo import MongoStore

        return await MongoStore.open(url, **options)
    raise StorageError(
        f"unknown storage URL scheme {scheme or url.partition(':')[0]!r} "
        f"(expected one of: {', '.join(s + '://' for s in SCHEMES)})"
    )
