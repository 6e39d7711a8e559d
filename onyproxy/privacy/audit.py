"""Checking the audit log's hash chain (see :mod:`onyproxy.storage.audit_chain`).

Walks the chain from the first entry: each entry must carry the next number, the previous
entry's hash, and a hash matching its own content; and every entry in the log must be part of
the chain. The first entry that breaks a rule is reported. The head (last number and hash) is
reported too: written down elsewhere, it also reveals entries cut off the end later
(``expect_head``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onyproxy.admin.records import timestamp
from onyproxy.storage import AuditEntry, Store
from onyproxy.storage.audit_chain import (
    GENESIS,
    SWITCH_ACTION,
    SWITCH_TARGET,
    entry_hash,
)

PAGE = 1000


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """The outcome of :func:`verify_audit`; ``problem`` and ``entry`` are set when it failed."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    entry: AuditEntry | None = None

    def as_json(self) -> dict[str, Any]:
        bad = self.entry
        return {
            "ok": self.ok, "entries": self.entries,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "problem": self.problem,
            "first_bad_entry": None if bad is None else {
                "id": bad.id, "seq": bad.seq, "at": timestamp(bad.at), "actor": bad.actor,
                "action": bad.action, "target": bad.target},
        }


def _problem(entry: AuditEntry, expected_seq: int, prev_hash: str,
             key: bytes | None) -> str | None:
    if entry.seq != expected_seq:
        return f"entry #{expected_seq} is missing (the next one is #{entry.seq})"
    if entry.prev_hash != prev_hash:
        return f"entry #{entry.seq} does not follow entry #{expected_seq - 1} (its previous " \
               f"hash differs: an entry before it was removed or replaced)"
    if entry.hash != entry_hash(entry, key):
        return f"entry #{entry.seq} was changed after it was written (its content does not " \
               f"match its hash)"
    return None


async def verify_audit(store: Store, *, key: bytes | None = None,
                       expect_head: tuple[int, str] | None = None,
                       anchors: dict[int, str] | None = None) -> AuditCheck:
    """Check the whole chain; ``expect_head`` is a ``(seq, hash)`` seen earlier, ``anchors``
    more of them (the anchor file). With ``key`` the chain must be keyed from its switch point
    on (see :mod:`onyproxy.storage.audit_chain`); without, every entry is checked with plain
    SHA-256 (chains of older versions)."""
    recorded = dict(anchors or {})
    if expect_head:
        recorded[expect_head[0]] = expect_head[1]
    seq, head, keyed = 0, GENESIS, False
    while page := await store.list_audit_chain(after_seq=seq, limit=PAGE):
        for entry in page:
            keyed = keyed or (key is not None and entry.action == SWITCH_ACTION
                              and entry.target == SWITCH_TARGET)
            problem = _problem(entry, seq + 1, head, key if keyed else None)
            if problem:
                return AuditCheck(False, seq, seq, head, problem, entry)
            seq, head = seq + 1, entry.hash or ""
            if recorded.get(seq, head) != head:
                return AuditCheck(False, seq, seq, head, f"entry #{seq} is not the one "
                                  f"recorded earlier (its hash differs)", entry)
    if recorded and seq < max(recorded):
        return AuditCheck(False, seq, seq, head, f"the log ends at entry #{seq}, but entry "
                          f"#{max(recorded)} was recorded earlier: entries were removed")
    if key is not None and seq and not keyed:
        return AuditCheck(False, seq, seq, head, "no entry is sealed with the audit key: the "
                          "chain was re-hashed without it (or written without the key)")
    if await store.count_audit() != seq:
        stray = await store.first_unchained_audit()
        return AuditCheck(False, seq, seq, head, "an entry is not part of the chain (inserted "
                          "directly, or its chain fields were removed)", stray)
    return AuditCheck(True, seq, seq, head)


def parse_head(text: str) -> tuple[int, str]:
    """``"42:ab12..."`` → ``(42, "ab12...")``, the form ``audit verify`` prints."""
    number, _, digest = text.partition(":")
    if not number.isdigit() or len(digest) != 64:
        raise ValueError("expected SEQ:HASH as printed by 'onyproxy audit verify'")
    return int(number), digest.lower()


async def arm_audit(store: Store, key: bytes) -> bool:
    """Seal new entries with ``key`` from now on. A chain without a switch point gets one
    (after its unkeyed entries, or as entry #1 of a new chain); ``True`` when it was added.

    Run at start by the gateway and the CLI, before anything else is audited."""
    store.audit_key = key
    if await store.list_audit(target=SWITCH_TARGET, limit=1):
        return False
    unkeyed = await store.count_audit()
    await store.append_audit(AuditEntry(
        "onyproxy", SWITCH_ACTION, SWITCH_TARGET,
        {"scheme": "hmac-sha256", "unkeyed_entries": unkeyed}))
    return True
