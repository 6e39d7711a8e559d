"""The audit log's hash chain: each entry stores the previous entry's hash and its own.

An entry's hash is HMAC-SHA256, under the audit key, over a canonical JSON of its number in the
chain (``seq``, from 1), id, time, actor, action, target, details and the previous hash. The
key (``security.audit_key``, else derived from the key pepper) lives outside the database, so
someone who can write to the database cannot re-hash the chain after changing it.

Chains written before the key existed used plain SHA-256. The first keyed process appends a
switch-point entry (action :data:`SWITCH_ACTION`, target :data:`SWITCH_TARGET`, keyed itself);
entries before the first such entry are checked with SHA-256, it and every later one with the
HMAC. A new chain starts with the switch point, so it is keyed from entry #1. Editing, removing or
reordering an entry after the fact breaks the chain at that entry, which
:func:`onyproxy.privacy.audit.verify_audit` reports. Both backends append through
:func:`seal` while holding the chain's head (SQLite: the write lock; MongoDB: a unique index
on ``seq`` that makes the loser of a race retry), so concurrent appends never fork it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from onyproxy.storage.base import AuditEntry, to_utc

GENESIS = "0" * 64  # the "previous hash" of the first entry
SWITCH_ACTION = "audit.chain_keyed"
SWITCH_TARGET = "audit-chain"
_KEY_LABEL = b"onyproxy audit chain v1"


def derive_key(audit_key: str, pepper: str) -> bytes:
    """The HMAC key: ``security.audit_key`` when set, else one derived from the pepper (a
    different key from the one API keys are hashed with, by a fixed label)."""
    if audit_key:
        return audit_key.encode()
    return hmac.new(pepper.encode(), _KEY_LABEL, hashlib.sha256).digest()


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


def entry_hash(entry: AuditEntry, key: bytes | None = None) -> str:
    """HMAC-SHA256 under ``key`` of the entry's canonical content (plain SHA-256 without a
    key: the chains of older versions), as 64 hex characters."""
    if key is None:
        return hashlib.sha256(canonical(entry)).hexdigest()
    return hmac.new(key, canonical(entry), hashlib.sha256).hexdigest()


def seal(entry: AuditEntry, last_seq: int | None, last_hash: str | None,
         key: bytes | None = None) -> AuditEntry:
    """Make ``entry`` the next link after the head (``None``: the chain is empty)."""
    entry.at = to_utc(entry.at)
    entry.details = plain(entry.details)
    entry.seq = (last_seq or 0) + 1
    entry.prev_hash = last_hash or GENESIS
    entry.hash = entry_hash(entry, key)
    return entry
