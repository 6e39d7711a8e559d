"""The SQLite side of :class:`~onyproxy.storage.privacy.PrivacyStore`, mixed into
:class:`~onyproxy.storage.sqlite.SQLiteStore` (it uses the store's ``_run``).

Large deletions run in batches, each its own short transaction, so a retention run never holds
the write lock long enough to stall the gateways writing usage events to the same file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from onyproxy.storage import sqlite_rows as rows
from onyproxy.storage.audit_chain import seal
from onyproxy.storage.base import AuditEntry, NotFoundError
from onyproxy.storage.privacy import (
    AccountPurge,
    Erasure,
    Objection,
    ObjectionStatus,
    PolicyStatus,
    PrivacyStore,
    Recipient,
)
from onyproxy.storage.sqlite_transactions import immediate, purge_before

T = TypeVar("T")
ID_BATCH = 500  # ids per IN (...) list, well below SQLite's variable limit

OBJECTION_COLUMNS = ("id, account_id, reason, actor, created_at, decision, status, resolved_at, "
                     "resolved_by, resolution, event_id, key_id, decided_at")
POLICY_COLUMNS = "account_id, version, accepted_at, notice_version, notice_at"


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _objection_from(row: sqlite3.Row) -> Objection:
    values = dict(row)
    for name in ("created_at", "resolved_at", "decided_at"):
        values[name] = _time(values[name])
    return Objection(**values)


def _policy_from(row: sqlite3.Row) -> PolicyStatus:
    return PolicyStatus(account_id=row["account_id"], version=row["version"],
                        accepted_at=_time(row["accepted_at"]),
                        notice_version=row["notice_version"], notice_at=_time(row["notice_at"]))


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), ID_BATCH):
        yield items[start:start + ID_BATCH]


def _marks(items: Sequence[Any]) -> str:
    return ", ".join("?" for _ in items)


class SQLitePrivacy(PrivacyStore):
    """Privacy storage on the SQLite connection of the store it is mixed into."""

    _run: Callable[..., Any]

    # retention -----------------------------------------------------------------------------
    async def purge_usage_events(self, before: datetime, *, dry_run: bool = False) -> int:
        return await purge_before(self._run, "usage_events", "created_at", before,
                                  dry_run=dry_run)

    async def purge_deleted_accounts(
        self, deleted_before: datetime, *, dry_run: bool = False
    ) -> AccountPurge:
        sql = "SELECT id FROM accounts WHERE status = 'deleted' AND deleted_at < ?"
        cutoff = rows.to_text(deleted_before)
        ids = [r[0] for r in await self._run(lambda c: c.execute(sql, (cutoff,)).fetchall())]
        purge = AccountPurge(accounts=len(ids))
        for chunk in _chunks(ids):
            keys, events = await self._run(lambda c, chunk=chunk: _purge_accounts(c, chunk,
                                                                                 dry_run))
            purge.keys += keys
            purge.security_events += events
        return purge

    async def purge_billing_records(self, before_month: str, *, dry_run: bool = False) -> int:
        if dry_run:
            sql = "SELECT count(*) FROM billing_records WHERE month < ?"
            return await self._run(lambda c: c.execute(sql, (before_month,)).fetchone()[0])
        sql = "DELETE FROM billing_records WHERE month < ?"
        return await self._run(lambda c: c.execute(sql, (before_month,)).rowcount)

    async def claim_lease(self, name: str, holder: str, *, now: datetime,
                          until: datetime) -> bool:
        sql = ("INSERT INTO job_leases (name, holder, until) VALUES (?1, ?2, ?3) "
               "ON CONFLICT (name) DO UPDATE SET holder = ?2, until = ?3 "
               "WHERE job_leases.until <= ?4 OR job_leases.holder = ?2")
        args = (name, holder, rows.to_text(until), rows.to_text(now))
        return await self._run(lambda c: c.execute(sql, args).rowcount) == 1

    # data subjects -------------------------------------------------------------------------
    async def usage_recipients(self, account_id: str) -> list[Recipient]:
        sql = ("SELECT provider, count(*), min(created_at), max(created_at) FROM usage_events "
               "WHERE account_id = ? AND provider != '' GROUP BY provider ORDER BY provider")
        found = await self._run(lambda c: c.execute(sql, (account_id,)).fetchall())
        return [Recipient(r[0], r[1], _time(r[2]), _time(r[3])) for r in found]

    async def erase_subject(self, account_id: str, *, email: str, at: datetime) -> Erasure:
        when = rows.to_text(at)

        def erase(conn: sqlite3.Connection) -> Erasure:
            with immediate(conn):
                changed = conn.execute(
                    "UPDATE accounts SET first_name = 'erased', last_name = '', email = ?1, "
                    "phone = NULL, company = NULL, billing = NULL, status = 'deleted', "
                    "deleted_at = coalesce(deleted_at, ?2), updated_at = ?2 WHERE id = ?3",
                    (email, when, account_id)).rowcount
                if changed == 0:
                    raise NotFoundError("account", account_id)
                keys = conn.execute(
                    "UPDATE api_keys SET name = 'erased', revoked = 1, "
                    "revoked_at = coalesce(revoked_at, ?) WHERE account_id = ?",
                    (when, account_id)).rowcount
                events = conn.execute(
                    "UPDATE usage_events SET ip = NULL, user_agent = NULL WHERE account_id = ? "
                    "AND (ip IS NOT NULL OR user_agent IS NOT NULL)", (account_id,)).rowcount
                security = conn.execute(
                    "UPDATE security_events SET client = NULL WHERE account_id = ? "
                    "AND client IS NOT NULL", (account_id,)).rowcount
            # The old page versions, personal data included, stay in the write-ahead log until
            # a checkpoint copies the new ones into the file; TRUNCATE then empties the log.
            # Best effort: a reader still using an old version keeps it until the next one.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return Erasure(keys_revoked=keys, usage_events=events, security_events=security)

        return await self._run(erase)

    async def add_objection(self, objection: Objection) -> Objection:
        sql = f"INSERT INTO objections ({OBJECTION_COLUMNS}) VALUES " \
              f"({rows.placeholders(OBJECTION_COLUMNS)})"
        o = objection
        args = (o.id, o.account_id, o.reason, o.actor, rows.to_text(o.created_at), o.decision,
                o.status, rows.to_text(o.resolved_at), o.resolved_by, o.resolution, o.event_id,
                o.key_id, rows.to_text(o.decided_at))
        await self._run(lambda c: c.execute(sql, args))
        stored = await self.get_objection(o.id)
        assert stored is not None
        return stored

    async def get_objection(self, objection_id: str) -> Objection | None:
        sql = f"SELECT {OBJECTION_COLUMNS} FROM objections WHERE id = ?"
        row = await self._run(lambda c: c.execute(sql, (objection_id,)).fetchone())
        return _objection_from(row) if row else None

    async def list_objections(
        self, *, account_id: str | None = None, status: ObjectionStatus | None = None,
        limit: int = 1000,
    ) -> list[Objection]:
        clauses = [(c, v) for c, v in (("account_id = ?", account_id), ("status = ?", status))
                   if v]
        where = f"WHERE {' AND '.join(c for c, _ in clauses)}" if clauses else ""
        sql = f"SELECT {OBJECTION_COLUMNS} FROM objections {where} " \
              "ORDER BY created_at, id LIMIT ?"
        args = (*(v for _, v in clauses), limit)
        return [_objection_from(r) for r in
                await self._run(lambda c: c.execute(sql, args).fetchall())]

    async def resolve_objection(
        self, objection_id: str, *, status: ObjectionStatus, by: str, resolution: str,
        at: datetime,
    ) -> Objection:
        sql = ("UPDATE objections SET status = ?, resolved_by = ?, resolution = ?, "
               "resolved_at = ? WHERE id = ?")
        args = (status, by, resolution, rows.to_text(at), objection_id)
        if await self._run(lambda c: c.execute(sql, args).rowcount) == 0:
            raise NotFoundError("objection", objection_id)
        stored = await self.get_objection(objection_id)
        assert stored is not None
        return stored

    # privacy policy ------------------------------------------------------------------------
    async def record_policy_acceptance(self, account_id: str, version: str,
                                       at: datetime) -> PolicyStatus:
        await self._must_have_account(account_id)
        sql = ("INSERT INTO policy_acceptances (account_id, version, accepted_at) "
               "VALUES (?1, ?2, ?3) ON CONFLICT (account_id) DO UPDATE SET version = ?2, "
               "accepted_at = ?3")
        args = (account_id, version, rows.to_text(at))
        await self._run(lambda c: c.execute(sql, args))
        return (await self.policy_statuses([account_id]))[account_id]

    async def record_policy_notice(self, account_id: str, version: str, at: datetime) -> None:
        sql = ("INSERT INTO policy_acceptances (account_id, notice_version, notice_at) "
               "VALUES (?1, ?2, ?3) ON CONFLICT (account_id) DO UPDATE SET notice_version = ?2, "
               "notice_at = ?3")
        args = (account_id, version, rows.to_text(at))
        await self._run(lambda c: c.execute(sql, args))

    async def policy_statuses(self, account_ids: Sequence[str]) -> dict[str, PolicyStatus]:
        found: dict[str, PolicyStatus] = {}
        for chunk in _chunks(list(account_ids)):
            sql = f"SELECT {POLICY_COLUMNS} FROM policy_acceptances " \
                  f"WHERE account_id IN ({_marks(chunk)})"
            for row in await self._run(lambda c, sql=sql, chunk=chunk:
                                       c.execute(sql, tuple(chunk)).fetchall()):
                found[row["account_id"]] = _policy_from(row)
        return found

    async def _must_have_account(self, account_id: str) -> None:
        sql = "SELECT 1 FROM accounts WHERE id = ?"
        if await self._run(lambda c: c.execute(sql, (account_id,)).fetchone()) is None:
            raise NotFoundError("account", account_id)

    # audit chain ---------------------------------------------------------------------------
    async def _append_chained(self, entry: AuditEntry) -> None:
        """Append ``entry`` as the chain's next link, under the write lock."""
        insert = f"INSERT INTO audit_log ({rows.AUDIT_COLUMNS}) " \
                 f"VALUES ({rows.placeholders(rows.AUDIT_COLUMNS)})"

        def append(conn: sqlite3.Connection) -> None:
            with immediate(conn):
                head = conn.execute("SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL "
                                    "ORDER BY seq DESC LIMIT 1").fetchone()
                seal(entry, head[0] if head else None, head[1] if head else None,
                     self.audit_key)
                conn.execute(insert, rows.audit_row(entry))

        await self._run(append)

    async def list_audit_chain(self, *, after_seq: int = 0,
                               limit: int = 1000) -> list[AuditEntry]:
        sql = f"SELECT {rows.AUDIT_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"
        found = await self._run(lambda c: c.execute(sql, (after_seq, limit)).fetchall())
        return [rows.audit_from(r) for r in found]

    async def count_audit(self) -> int:
        return await self._run(lambda c: c.execute("SELECT count(*) FROM audit_log")
                               .fetchone()[0])

    async def first_unchained_audit(self) -> AuditEntry | None:
        sql = f"SELECT {rows.AUDIT_COLUMNS} FROM audit_log WHERE seq IS NULL " \
              "ORDER BY at, rowid LIMIT 1"
        row = await self._run(lambda c: c.execute(sql).fetchone())
        return rows.audit_from(row) if row else None


def _purge_accounts(conn: sqlite3.Connection, ids: Sequence[str],
                    dry_run: bool) -> tuple[int, int]:
    """Remove one batch of accounts and what hangs off them; how many keys and security
    events they had."""
    marks, args = _marks(ids), tuple(ids)
    owned = f"WHERE account_id IN ({marks})"
    if dry_run:
        keys, events = (conn.execute(f"SELECT count(*) FROM {table} {owned}", args).fetchone()[0]
                        for table in ("api_keys", "security_events"))
        return keys, events
    with immediate(conn):
        conn.execute(f"UPDATE usage_events SET ip = NULL, user_agent = NULL {owned}", args)
        for table in ("objections", "policy_acceptances"):
            conn.execute(f"DELETE FROM {table} {owned}", args)
        events = conn.execute(f"DELETE FROM security_events {owned}", args).rowcount
        keys = conn.execute(f"DELETE FROM api_keys {owned}", args).rowcount
        conn.execute(f"DELETE FROM accounts WHERE id IN ({marks})", args)
    return keys, events
