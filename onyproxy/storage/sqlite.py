"""The embedded default store: one SQLite file, WAL mode, migrated on open.

All sqlite3 calls run on one dedicated worker thread that owns the connection, so the event
loop never blocks on disk I/O and the connection is never shared between threads. Several
processes (gateway workers, the CLI) may open the same file; WAL and a busy timeout let them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from onyproxy.storage import sqlite_rows as rows
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
from onyproxy.storage.sqlite_files import prepare_files
from onyproxy.storage.sqlite_privacy import SQLitePrivacy
from onyproxy.storage.sqlite_schema import SchemaTooNewError, migrate, restore_triggers
from onyproxy.storage.sqlite_security import SQLiteSecurity
from onyproxy.storage.sqlite_totals import register_functions, total_from, totals_query
from onyproxy.storage.sqlite_transactions import immediate

T = TypeVar("T")
log = logging.getLogger("onyproxy.storage")

#: Unique constraints and the field a :class:`ConflictError` names when they fail.
_UNIQUE_FIELDS = {
    "accounts.email": "email",
    "accounts.id": "id",
    "api_keys.hash": "hash",
    "api_keys.id": "id",
    "audit_log.id": "id",
    "objections.id": "id",
    "security_events.id": "id",
}


def path_from_url(url: str) -> str:
    """``sqlite:///data/x.db`` → ``data/x.db`` (relative), ``sqlite:////srv/x.db`` → absolute."""
    if not url.startswith("sqlite:///"):
        raise StorageError(f"SQLite URL must look like sqlite:///path/to/file.db, got {url!r}")
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    if not path:
        raise StorageError(f"SQLite URL {url!r} names no file")
    return path if path == ":memory:" else str(Path(path).expanduser())


def _connect(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    if path != ":memory:":
        prepare_files(path)
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            return _connect_once(path, busy_timeout_s)
        except sqlite3.OperationalError as exc:
            # Processes opening a new file at once (server.workers > 1, or the CLI next to a
            # starting gateway): switching it to WAL needs an exclusive lock, and SQLite answers
            # "database is locked" at once instead of waiting where waiting could deadlock.
            # Starting over, the file is WAL already or the other process is done with it.
            if not _locked(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(random.uniform(0.01, 0.05))


def _locked(exc: sqlite3.OperationalError) -> bool:
    # The primary result code (the low byte; extended codes such as SQLITE_BUSY_RECOVERY add
    # to it), not the message text.
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _connect_once(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        register_functions(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        # Deleted and overwritten content is zeroed, not left in free pages: an erased
        # person's data must not be recoverable from the file.
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn)
        if dropped := restore_triggers(conn):
            log.error("SQLite database %s: the audit log's protection triggers %s were "
                      "dropped; recreated them. Run 'onyproxy audit verify'.", path,
                      ", ".join(dropped))
    except BaseException:
        conn.close()
        raise
    return conn


class SQLiteStore(SQLitePrivacy, SQLiteSecurity, Store):
    """A :class:`Store` in one SQLite file (or ``:memory:``), served by one worker thread."""

    def __init__(self, path: str, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self.path = path
        self._conn = conn
        self._executor = executor
        self._closed = False

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        busy_timeout_s: float = 5.0,
        retention_days: int = 90,
        billing_retention_days: int = 3650,
    ) -> SQLiteStore:
        """Open (creating and migrating) the database ``url`` names.

        The retention options are accepted for parity with MongoDB; SQLite has no TTL indexes,
        so expiry there is the retention job's work.
        """
        path = path_from_url(url)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onyproxy-sqlite")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, _connect, path, busy_timeout_s)
        except SchemaTooNewError as exc:
            executor.shutdown(wait=False)
            raise StorageError(f"SQLite database {path}: {exc}") from None
        except (sqlite3.Error, OSError) as exc:
            executor.shutdown(wait=False)
            raise StorageError(f"cannot open SQLite database {path}: {exc}") from None
        return cls(path, conn, executor)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StorageError(f"SQLite store {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, self._conn)
        except sqlite3.IntegrityError as exc:
            message = str(exc)
            for constraint, field in _UNIQUE_FIELDS.items():
                if message == f"UNIQUE constraint failed: {constraint}":
                    raise ConflictError(field, CONFLICT_MESSAGES[field]) from None
            raise StorageError(f"SQLite database {self.path}: {exc}") from None
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite database {self.path}: {exc}") from None

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self._run(lambda conn: conn.close())
        finally:
            self._closed = True
            self._executor.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            return await self._run(lambda c: c.execute("SELECT 1").fetchone()[0] == 1)
        except Exception:
            return False

    # accounts ------------------------------------------------------------------------------
    async def create_account(self, account: Account) -> Account:
        row = rows.account_row(account)
        sql = (
            f"INSERT INTO accounts ({rows.ACCOUNT_COLUMNS}) "
            f"VALUES ({rows.placeholders(rows.ACCOUNT_COLUMNS)})"
        )
        await self._run(lambda c: c.execute(sql, row))
        return await self._must_get_account(account.id)

    async def get_account(self, account_id: str) -> Account | None:
        sql = f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE id = ?"
        row = await self._run(lambda c: c.execute(sql, (account_id,)).fetchone())
        return rows.account_from(row) if row else None

    async def get_account_by_email(self, email: str) -> Account | None:
        sql = f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE email = ?"
        row = await self._run(lambda c: c.execute(sql, (email,)).fetchone())
        return rows.account_from(row) if row else None

    async def list_accounts(
        self, *, status: AccountStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[Account]:
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        sql = (
            f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts {where} "
            "ORDER BY created_at, id LIMIT ? OFFSET ?"
        )
        found = await self._run(lambda c: c.execute(sql, (*args, limit, offset)).fetchall())
        return [rows.account_from(r) for r in found]

    async def update_account(self, account_id: str, changes: Mapping[str, Any]) -> Account:
        check_account_changes(changes)
        names = sorted(changes)
        values = [rows.account_value(n, changes[n]) for n in names]
        assignments = ", ".join(f"{n} = ?" for n in [*names, "updated_at"])
        sql = f"UPDATE accounts SET {assignments} WHERE id = ?"
        args = (*values, rows.to_text(utcnow()), account_id)
        if await self._run(lambda c: c.execute(sql, args).rowcount) == 0:
            raise NotFoundError("account", account_id)
        return await self._must_get_account(account_id)

    async def set_account_status(
        self, account_id: str, status: AccountStatus, *, at: datetime | None = None
    ) -> Account:
        check_status(status)
        now = utcnow()
        deleted_at = rows.to_text(at or now) if status == "deleted" else None
        sql = "UPDATE accounts SET status = ?, deleted_at = ?, updated_at = ? WHERE id = ?"
        args = (status, deleted_at, rows.to_text(now), account_id)
        if await self._run(lambda c: c.execute(sql, args).rowcount) == 0:
            raise NotFoundError("account", account_id)
        return await self._must_get_account(account_id)

    async def _must_get_account(self, account_id: str) -> Account:
        account = await self.get_account(account_id)
        if account is None:
            raise NotFoundError("account", account_id)
        return account

    # api keys ------------------------------------------------------------------------------
    async def create_key(self, key: ApiKey) -> ApiKey:
        row = rows.key_row(key)
        sql = (
            f"INSERT INTO api_keys ({rows.KEY_COLUMNS}) "
            f"VALUES ({rows.placeholders(rows.KEY_COLUMNS)})"
        )
        try:
            await self._run(lambda c: c.execute(sql, row))
        except StorageError as exc:
            if "FOREIGN KEY constraint failed" in str(exc):
                raise NotFoundError("account", key.account_id) from None
            raise
        stored = await self.get_key(key.id)
        assert stored is not None
        return stored

    async def get_key(self, key_id: str) -> ApiKey | None:
        sql = f"SELECT {rows.KEY_COLUMNS} FROM api_keys WHERE id = ?"
        row = await self._run(lambda c: c.execute(sql, (key_id,)).fetchone())
        return rows.key_from(row) if row else None

    async def get_key_by_hash(self, key_hash: str) -> ApiKey | None:
        sql = f"SELECT {rows.KEY_COLUMNS} FROM api_keys WHERE hash = ?"
        row = await self._run(lambda c: c.execute(sql, (key_hash,)).fetchone())
        return rows.key_from(row) if row else None

    async def list_keys(self, account_id: str, *, include_revoked: bool = True) -> list[ApiKey]:
        where = "account_id = ?" + ("" if include_revoked else " AND revoked = 0")
        sql = f"SELECT {rows.KEY_COLUMNS} FROM api_keys WHERE {where} ORDER BY created_at, id"
        found = await self._run(lambda c: c.execute(sql, (account_id,)).fetchall())
        return [rows.key_from(r) for r in found]

    async def revoke_key(self, key_id: str, *, at: datetime | None = None) -> ApiKey:
        sql = (
            "UPDATE api_keys SET revoked = 1, revoked_at = coalesce(revoked_at, ?) WHERE id = ?"
        )
        args = (rows.to_text(at or utcnow()), key_id)
        if await self._run(lambda c: c.execute(sql, args).rowcount) == 0:
            raise NotFoundError("key", key_id)
        stored = await self.get_key(key_id)
        assert stored is not None
        return stored

    async def touch_key(self, key_id: str, at: datetime) -> None:
        sql = (
            "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2 "
            "AND (last_used_at IS NULL OR last_used_at < ?1)"
        )
        args = (rows.to_text(at), key_id)
        await self._run(lambda c: c.execute(sql, args))

    async def delete_key(self, key_id: str) -> bool:
        sql = "DELETE FROM api_keys WHERE id = ?"
        return await self._run(lambda c: c.execute(sql, (key_id,)).rowcount) > 0

    # usage events --------------------------------------------------------------------------
    async def insert_usage_events(self, events: Sequence[UsageEvent]) -> int:
        values = [rows.usage_row(e) for e in events]
        if not values:
            return 0
        sql = (
            f"INSERT INTO usage_events ({rows.USAGE_COLUMNS}) "
            f"VALUES ({rows.placeholders(rows.USAGE_COLUMNS)}) "
            "ON CONFLICT (request_id) DO NOTHING"
        )

        def insert(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            with immediate(conn):
                conn.executemany(sql, values)
            return conn.total_changes - before

        return await self._run(insert)

    async def list_usage_events(
        self,
        *,
        account_id: str | None = None,
        key_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[UsageEvent]:
        clauses: list[str] = []
        args: list[Any] = []
        for clause, value in (
            ("account_id = ?", account_id),
            ("key_id = ?", key_id),
            ("created_at >= ?", rows.to_text(since)),
            ("created_at < ?", rows.to_text(until)),
        ):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (
            f"SELECT {rows.USAGE_COLUMNS} FROM usage_events {where} "
            "ORDER BY created_at, request_id LIMIT ?"
        )
        found = await self._run(lambda c: c.execute(sql, (*args, limit)).fetchall())
        return [rows.usage_from(r) for r in found]

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
        sql, args = totals_query(group_by, account_id=account_id, key_id=key_id, since=since,
                                 until=until, billable_only=billable_only)
        found = await self._run(lambda c: c.execute(sql, args).fetchall())
        return [total_from(r, group_by) for r in found]

    # billing -------------------------------------------------------------------------------
    async def upsert_billing_record(self, record: BillingRecord) -> None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in
                            rows.BILLING_COLUMNS.replace(" ", "").split(",")[2:])
        sql = (
            f"INSERT INTO billing_records ({rows.BILLING_COLUMNS}) "
            f"VALUES ({rows.placeholders(rows.BILLING_COLUMNS)}) "
            f"ON CONFLICT (account_id, month) DO UPDATE SET {updates}"
        )
        args = rows.billing_row(record)
        await self._run(lambda c: c.execute(sql, args))

    async def list_billing_records(
        self, *, account_id: str | None = None, month: str | None = None
    ) -> list[BillingRecord]:
        clauses = [(c, v) for c, v in (("account_id = ?", account_id), ("month = ?", month)) if v]
        where = f"WHERE {' AND '.join(c for c, _ in clauses)}" if clauses else ""
        sql = (
            f"SELECT {rows.BILLING_COLUMNS} FROM billing_records {where} "
            "ORDER BY month, account_id"
        )
        args = tuple(v for _, v in clauses)
        found = await self._run(lambda c: c.execute(sql, args).fetchall())
        return [rows.billing_from(r) for r in found]

    # audit log -----------------------------------------------------------------------------
    async def append_audit(self, entry: AuditEntry) -> None:
        await self._append_chained(entry)  # a link of the hash chain (sqlite_privacy)

    async def list_audit(
        self, *, actor: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        clauses = [(c, v) for c, v in (("actor = ?", actor), ("target = ?", target)) if v]
        where = f"WHERE {' AND '.join(c for c, _ in clauses)}" if clauses else ""
        sql = f"SELECT {rows.AUDIT_COLUMNS} FROM audit_log {where} ORDER BY at, rowid LIMIT ?"
        args = (*(v for _, v in clauses), limit)
        found = await self._run(lambda c: c.execute(sql, args).fetchall())
        return [rows.audit_from(r) for r in found]
