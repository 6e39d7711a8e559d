"""The audit log's hash chain: each entry stores the previous entry's hash and its own.

An entry's hash is SHA-256 over a canonical JSON of its number in the chain (``seq``, from 1),
id, time, actor, action, target, details and the previous hash. Editing, removing or
reordering an entry after the fact breaks the chain at that entry, which
:func:`onyproxy.privacy.audit.verify_audit` reports. Both backends append through
:func:`seal` while holding the chain's head (SQLite: the write lock; MongoDB: a unique index
on ``seq`` that makes the loser of a race retry), so concurrent appends never fork it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from onyproxy.storage.base import AuditEntry, to_utc

GENESIS = "0" * 64  # the "previous hash" of the first entry


def plain(details: Any) -> Any:
    """``details`` as JSON keeps them, so the hash computed now matches the one recomputed
    from what a backend reads back (tuples become lists, decimals strings)."""
    return json.loads(json.dumps(details, default=str, ensure_ascii=False))


def canonical(entry: AuditEntry) -> bytes:
    """The bytes an entry's hash covers."""
    content = {
        "seq": entry.seq,
        "id": entry.id,
        "at": to_utc(entry.at).isoformat(timespec="milliseconds"),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 of the entry's canonical content, as 64 hex characters."""
    return hashlib.sha256(canonical(entry)).hexdigest()


def seal(entry: AuditEntry, last_seq: int | None, last_hash: str | None) -> AuditEntry:
    """Make ``entry`` the next link after the head (``None``: the chain is empty)."""
    entry.at = to_utc(entry.at)
    entry.details = plain(entry.details)
    entry.seq = (last_seq or 0) + 1
    entry.prev_hash = last_hash or GENESIS
    entry.hash = entry_hash(entry)
    return entry
