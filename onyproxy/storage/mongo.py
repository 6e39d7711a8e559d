"""The production store: MongoDB through PyMongo's ``AsyncMongoClient`` (not Motor).

The database is the one named in the URL path (``mongodb://host/onyproxy``), ``onyproxy`` when
the URL names none. Opening checks the server answers within a short server-selection timeout
and creates the indexes: unique email, unique key hash, unique usage request id, and TTL indexes
that expire usage events and billing records after their retention period (DESIGN.md §4).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from onyproxy.storage.base import (
    CONFLICT_MESSAGES,
    Account,
    AccountStatus,
    ApiKey,
    AuditEntry,
    BillingRecord,
    ConflictError,
    NotFoundError,
    StorageError,
    Store,
    UsageEvent,
    UsageTotal,
    check_account_changes,
    check_status,
    utcnow,
)
from onyproxy.storage.mongo_documents import (
    account_doc,
    account_from,
    audit_from,
    billing_doc,
    billing_from,
    key_doc,
    key_from,
    time_range,
    to_money,
    to_time,
    total_from,
    totals_pipeline,
    usage_doc,
    usage_from,
)
from onyproxy.storage.mongo_privacy import MongoPrivacy
from onyproxy.storage.mongo_security import MongoSecurity

DEFAULT_DATABASE = "onyproxy"
_DAY = 86_400
_DUPLICATE_KEY = 11000
#: Codes mongod answers when an index exists under the same name with other options.
_INDEX_OPTIONS_CONFLICT = frozenset({85, 86})


def _hosts(url: str) -> str:
    """The host list of a MongoDB URL, for messages: no credentials, no DNS lookup."""
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2] or "?"


class MongoStore(MongoPrivacy, MongoSecurity, Store):
    """A :class:`Store` in one MongoDB database."""

    def __init__(self, client: AsyncMongoClient, db: AsyncDatabase, where: str) -> None:
        self._client = client
        self.db = db
        self._where = where

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        database: str | None = None,
        retention_days: int = 90,
        billing_retention_days: int = 3650,
        server_selection_timeout_ms: int = 3000,
    ) -> MongoStore:
        """Connect, check the server answers, and create the indexes.

        ``database`` overrides the name in the URL (tests use it for a throwaway database).
        """
        where = f"MongoDB at {_hosts(url)}"
        try:
            client: AsyncMongoClient = AsyncMongoClient(
                url,
                tz_aware=True,
                tzinfo=UTC,
                serverSelectionTimeoutMS=server_selection_timeout_ms,
                connectTimeoutMS=server_selection_timeout_ms,
                appname="onyproxy",
            )
        except (ConfigurationError, ValueError, TypeError) as exc:
            raise StorageError(f"invalid MongoDB URL for {where}: {exc}") from None
        db = client[database] if database else client.get_default_database(DEFAULT_DATABASE)
        store = cls(client, db, f"{where} (database {db.name!r})")
        try:
            await client.admin.command("ping")
            await store._create_indexes(retention_days * _DAY, billing_retention_days * _DAY)
        except ServerSelectionTimeoutError:
            await client.close()
            raise StorageError(
                f"cannot reach {where}: no server answered within "
                f"{server_selection_timeout_ms / 1000:g}s"
            ) from None
        except PyMongoError as exc:
            await client.close()
            raise StorageError(f"cannot open {store._where}: {exc}") from None
        return store

    async def _create_indexes(self, usage_ttl_s: int, billing_ttl_s: int) -> None:
        db = self.db
        await db.accounts.create_index("email", unique=True, name="email_unique")
        await db.accounts.create_index([("created_at", ASCENDING), ("_id", ASCENDING)],
                                       name="created")
        await db.api_keys.create_index("hash", unique=True, name="hash_unique")
        await db.api_keys.create_index([("account_id", ASCENDING), ("created_at", ASCENDING)],
                                       name="account_created")
        await db.usage_events.create_index("request_id", unique=True, name="request_id_unique")
        await self._create_ttl_index("usage_events", "created_at", usage_ttl_s)
        await db.usage_events.create_index([("account_id", ASCENDING), ("created_at", ASCENDING)],
                                           name="account_created")
        await db.usage_events.create_index([("key_id", ASCENDING), ("created_at", ASCENDING)],
                                           name="key_created")
        await db.billing_records.create_index([("account_id", ASCENDING), ("month", ASCENDING)],
                                              unique=True, name="account_month_unique")
        await self._create_ttl_index("billing_records", "updated_at", billing_ttl_s)
        await db.audit_log.create_index([("at", ASCENDING), ("_id", ASCENDING)], name="at")
        await db.audit_log.create_index([("target", ASCENDING), ("at", ASCENDING)],
                                        name="target_at")
        await self._create_privacy_indexes()
        await self._create_security_indexes(usage_ttl_s)

    async def _create_ttl_index(self, collection: str, field: str, seconds: int) -> None:
        """Create the TTL index, or change its expiry in place when retention was changed."""
        name = f"{field}_ttl"
        try:
            await self.db[collection].create_index(field, expireAfterSeconds=seconds, name=name)
        except OperationFailure as exc:
            if exc.code not in _INDEX_OPTIONS_CONFLICT:
                raise
            await self.db.command(
                {"collMod": collection, "index": {"name": name, "expireAfterSeconds": seconds}}
            )

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn driver failures into :class:`StorageError` naming the database."""
        try:
            yield
        except DuplicateKeyError as exc:
            pattern = (exc.details or {}).get("keyPattern") or {}
            field = "email" if "email" in pattern else "hash" if "hash" in pattern else "id"
            raise ConflictError(field, CONFLICT_MESSAGES[field]) from None
        except PyMongoError as exc:
            raise StorageError(f"{self._where}: {exc}") from None

    async def close(self) -> None:
        await self._client.close()

    async def ping(self) -> bool:
        try:
            await self._client.admin.command("ping")
        except Exception:
            return False
        return True

    # accounts ------------------------------------------------------------------------------
    async def create_account(self, account: Account) -> Account:
        doc = account_doc(account)
        with self._guard():
            await self.db.accounts.insert_one(doc)
        return account_from(doc)

    async def get_account(self, account_id: str) -> Account | None:
        with self._guard():
            doc = await self.db.accounts.find_one({"_id": account_id})
        return account_from(doc) if doc else None

    async def get_account_by_email(self, email: str) -> Account | None:
        with self._guard():
            doc = await self.db.accounts.find_one({"email": email})
        return account_from(doc) if doc else None

    async def list_accounts(
        self, *, status: AccountStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[Account]:
        query = {"status": status} if status else {}
        with self._guard():
            cursor = self.db.accounts.find(query).sort([("created_at", 1), ("_id", 1)])
            docs = await cursor.skip(offset).limit(limit).to_list()
        return [account_from(d) for d in docs]

    async def update_account(self, account_id: str, changes: Mapping[str, Any]) -> Account:
        check_account_changes(changes)
        values = dict(changes)
        if values.get("billing") is not None:
            values["billing"] = asdict(values["billing"])
        if "budget_usd" in values:
            values["budget_usd"] = to_money(values["budget_usd"])
        values["updated_at"] = utcnow()
        return await self._update_account(account_id, values)

    async def set_account_status(
        self, account_id: str, status: AccountStatus, *, at: datetime | None = None
    ) -> Account:
        check_status(status)
        now = utcnow()
        deleted_at = to_time(at or now) if status == "deleted" else None
        values = {"status": status, "deleted_at": deleted_at, "updated_at": now}
        return await self._update_account(account_id, values)

    async def _update_account(self, account_id: str, values: dict[str, Any]) -> Account:
        with self._guard():
            doc = await self.db.accounts.find_one_and_update(
                {"_id": account_id}, {"$set": values}, return_document=ReturnDocument.AFTER
            )
        if doc is None:
            raise NotFoundError("account", account_id)
        return account_from(doc)

    # api keys ------------------------------------------------------------------------------
    async def create_key(self, key: ApiKey) -> ApiKey:
        doc = key_doc(key)
        with self._guard():
            if await self.db.accounts.count_documents({"_id": key.account_id}, limit=1) == 0:
                raise NotFoundError("account", key.account_id)
            await self.db.api_keys.insert_one(doc)
        return key_from(doc)

    async def get_key(self, key_id: str) -> ApiKey | None:
        with self._guard():
            doc = await self.db.api_keys.find_one({"_id": key_id})
        return key_from(doc) if doc else None

    async def get_key_by_hash(self, key_hash: str) -> ApiKey | None:
        with self._guard():
            doc = await self.db.api_keys.find_one({"hash": key_hash})
        return key_from(doc) if doc else None

    async def list_keys(self, account_id: str, *, include_revoked: bool = True) -> list[ApiKey]:
        query: dict[str, Any] = {"account_id": account_id}
        if not include_revoked:
            query["revoked"] = False
        with self._guard():
            cursor = self.db.api_keys.find(query).sort([("created_at", 1), ("_id", 1)])
            docs = await cursor.to_list()
        return [key_from(d) for d in docs]

    async def revoke_key(self, key_id: str, *, at: datetime | None = None) -> ApiKey:
        when = to_time(at or utcnow())
        with self._guard():
            await self.db.api_keys.update_one(
                {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": when}}
            )
            doc = await self.db.api_keys.find_one_and_update(
                {"_id": key_id}, {"$set": {"revoked": True}}, return_document=ReturnDocument.AFTER
            )
        if doc is None:
            raise NotFoundError("key", key_id)
        return key_from(doc)

    async def touch_key(self, key_id: str, at: datetime) -> None:
        with self._guard():
            await self.db.api_keys.update_one(
                {"_id": key_id}, {"$max": {"last_used_at": to_time(at)}}
            )

    async def delete_key(self, key_id: str) -> bool:
        with self._guard():
            result = await self.db.api_keys.delete_one({"_id": key_id})
        return result.deleted_count > 0

    # usage events --------------------------------------------------------------------------
    async def insert_usage_events(self, events: Sequence[UsageEvent]) -> int:
        docs = [usage_doc(e) for e in events]
        if not docs:
            return 0
        try:
            result = await self.db.usage_events.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            details = exc.details
            others = [e for e in details["writeErrors"] if e.get("code") != _DUPLICATE_KEY]
            if others or details.get("writeConcernErrors"):
                raise StorageError(f"{self._where}: usage insert failed: {details}") from None
            return int(details["nInserted"])
        except PyMongoError as exc:
            raise StorageError(f"{self._where}: {exc}") from None
        return len(result.inserted_ids)

    async def list_usage_events(
        self,
        *,
        account_id: str | None = None,
        key_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[UsageEvent]:
        query: dict[str, Any] = {}
        if account_id is not None:
            query["account_id"] = account_id
        if key_id is not None:
            query["key_id"] = key_id
        if bounds := time_range(since, until):
            query["created_at"] = bounds
        with self._guard():
            cursor = self.db.usage_events.find(query).sort([("created_at", 1), ("request_id", 1)])
            docs = await cursor.limit(limit).to_list()
        return [usage_from(d) for d in docs]

    async def usage_totals(
        self,
        *,
        group_by: Sequence[str],
        account_id: str | None = None,
        key_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        billable_only: bool = False,
    ) -> list[UsageTotal]:
        query = {k: v for k, v in (("account_id", account_id), ("key_id", key_id))
                 if v is not None}
        if bounds := time_range(since, until):
            query["created_at"] = bounds
        pipeline = totals_pipeline(group_by, query, billable_only)
        with self._guard():
            cursor = await self.db.usage_events.aggregate(pipeline)
            docs = await cursor.to_list()
        return [total_from(d, group_by) for d in docs]

    # billing -------------------------------------------------------------------------------
    async def upsert_billing_record(self, record: BillingRecord) -> None:
        doc = billing_doc(record)
        with self._guard():
            await self.db.billing_records.update_one(
                {"account_id": record.account_id, "month": record.month},
                {"$set": doc},
                upsert=True,
            )

    async def list_billing_records(
        self, *, account_id: str | None = None, month: str | None = None
    ) -> list[BillingRecord]:
        query = {k: v for k, v in (("account_id", account_id), ("month", month)) if v}
        with self._guard():
            cursor = self.db.billing_records.find(query).sort([("month", 1), ("account_id", 1)])
            docs = await cursor.to_list()
        return [billing_from(d) for d in docs]

    # audit log -----------------------------------------------------------------------------
    async def append_audit(self, entry: AuditEntry) -> None:
        await self._append_chained(entry)  # a link of the hash chain (mongo_privacy)

    async def list_audit(
        self, *, actor: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        query = {k: v for k, v in (("actor", actor), ("target", target)) if v}
        with self._guard():
            cursor = self.db.audit_log.find(query).sort([("at", 1), ("_id", 1)])
            docs = await cursor.limit(limit).to_list()
        return [audit_from(d) for d in docs]
