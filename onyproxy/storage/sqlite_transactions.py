"""Write transactions on a SQLite store's connection: the write lock taken at once, and
deletions of old rows in batches, each its own short transaction, so a purge never holds the
write lock long enough to stall the gateways writing to the same file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from onyproxy.storage import sqlite_rows as rows

BATCH = 5000  # rows deleted per transaction


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the database's write lock at once (across processes)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


async def purge_before(run: Callable[..., Any], table: str, column: str, before: datetime,
                       *, dry_run: bool) -> int:
    """Delete the rows of ``table`` whose time ``column`` is before ``before``, in batches;
    with ``dry_run``, only count them. ``run`` is the store's ``_run``; ``table`` and
    ``column`` are names from this package, never caller input."""
    cutoff = rows.to_text(before)
    if dry_run:
        sql = f"SELECT count(*) FROM {table} WHERE {column} < ?"
        return await run(lambda c: c.execute(sql, (cutoff,)).fetchone()[0])
    sql = (f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
           f"WHERE {column} < ? LIMIT ?)")
    total = 0
    while True:
        deleted = await run(lambda c: c.execute(sql, (cutoff, BATCH)).rowcount)
        total += deleted
        if deleted < BATCH:
            return total
