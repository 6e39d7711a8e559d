"""The SQLite side of :class:`~onyproxy.storage.security.SecurityStore`, mixed into
:class:`~onyproxy.storage.sqlite.SQLiteStore` (it uses the store's ``_run``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from onyproxy.storage import sqlite_rows as rows
from onyproxy.storage.base import ApiKey, NotFoundError, utcnow
from onyproxy.storage.security import SecurityEvent, SecurityStore
from onyproxy.storage.sqlite_transactions import purge_before

EVENT_COLUMNS = "id, kind, at, action, key_id, account_id, client, reason, evidence"


def _event_row(e: SecurityEvent) -> tuple[Any, ...]:
    return (e.id, e.kind, rows.to_text(e.at), e.action, e.key_id, e.account_id, e.client,
            e.reason, json.dumps(e.evidence, default=str))


def _event_from(row: sqlite3.Row) -> SecurityEvent:
    return SecurityEvent(id=row["id"], kind=row["kind"], at=datetime.fromisoformat(row["at"]),
                         action=row["action"], key_id=row["key_id"],
                         account_id=row["account_id"], client=row["client"],
                         reason=row["reason"], evidence=json.loads(row["evidence"]))


class SQLiteSecurity(SecurityStore):
    """Security storage on the SQLite connection of the store it is mixed into."""

    _run: Callable[..., Any]
    get_key: Callable[..., Any]

    async def suspend_key(self, key_id: str, *, reason: str, by: str,
                          at: datetime) -> ApiKey:
        # Only a key not yet suspended changes: the first suspension (and its audit trail)
        # stays the one on record when several workers detect the same abuse.
        sql = ("UPDATE api_keys SET suspended_at = ?, suspended_by = ?, suspended_reason = ? "
               "WHERE id = ? AND suspended_at IS NULL")
        args = (rows.to_text(at), by, reason, key_id)
        await self._run(lambda c: c.execute(sql, args))
        return await self._must_get_key(key_id)

    async def reinstate_key(self, key_id: str) -> ApiKey:
        sql = ("UPDATE api_keys SET suspended_at = NULL, suspended_by = NULL, "
               "suspended_reason = NULL WHERE id = ?")
        await self._run(lambda c: c.execute(sql, (key_id,)))
        return await self._must_get_key(key_id)

    async def _must_get_key(self, key_id: str) -> ApiKey:
        key = await self.get_key(key_id)
        if key is None:
            raise NotFoundError("key", key_id)
        return key

    async def add_security_event(self, event: SecurityEvent) -> None:
        sql = f"INSERT INTO security_events ({EVENT_COLUMNS}) " \
              f"VALUES ({rows.placeholders(EVENT_COLUMNS)})"
        args = _event_row(event)
        await self._run(lambda c: c.execute(sql, args))

    async def list_security_events(
        self, *, account_id: str | None = None, key_id: str | None = None,
        kind: str | None = None, action: str | None = None, since: datetime | None = None,
        limit: int = 100, newest_first: bool = False,
    ) -> list[SecurityEvent]:
        filters = (("account_id = ?", account_id), ("key_id = ?", key_id), ("kind = ?", kind),
                   ("action = ?", action), ("at >= ?", rows.to_text(since)))
        clauses = [(c, v) for c, v in filters if v is not None]
        where = f"WHERE {' AND '.join(c for c, _ in clauses)}" if clauses else ""
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {EVENT_COLUMNS} FROM security_events {where} " \
              f"ORDER BY at {order}, rowid {order} LIMIT ?"
        args = (*(v for _, v in clauses), limit)
        found = await self._run(lambda c: c.execute(sql, args).fetchall())
        return [_event_from(r) for r in found]

    async def purge_security_events(self, before: datetime, *, dry_run: bool = False) -> int:
        return await purge_before(self._run, "security_events", "at", before, dry_run=dry_run)

    async def revoke_session(self, session_id: str, until: datetime) -> None:
        insert = ("INSERT INTO revoked_sessions (id, until) VALUES (?, ?) "
                  "ON CONFLICT (id) DO UPDATE SET until = max(until, excluded.until)")
        until_text = rows.to_text(until)

        def write(c: sqlite3.Connection) -> None:
            # Ended sessions that have expired anyway are dropped here: no job needed.
            c.execute("DELETE FROM revoked_sessions WHERE until <= ?", (rows.to_text(utcnow()),))
            c.execute(insert, (session_id, until_text))
        await self._run(write)

    async def session_revoked(self, session_id: str, now: datetime) -> bool:
        sql = "SELECT 1 FROM revoked_sessions WHERE id = ? AND until > ?"
        args = (session_id, rows.to_text(now))
        return await self._run(lambda c: c.execute(sql, args).fetchone()) is not None
