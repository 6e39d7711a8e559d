"""The per-process cache of key lookups, by key hash.

A lookup that found a key keeps the key and its account for ``ttl_s``; after that the next
request re-reads both from the store, so a revocation, an expiry change or a suspended account
takes effect within ``ttl_s`` on every worker without any signal between them. A lookup that
found nothing is kept for ``negative_ttl_s`` only, in a separate and smaller table, so a flood
of made-up keys neither reaches the store on every request nor pushes real keys out.

Entries older than ``ttl_s`` are not dropped at once: while the store is unreachable they are
still good for ``stale_ttl_s`` (see :meth:`KeyCache.stale`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from onyproxy.storage import Account, ApiKey

MAX_KEYS = 100_000
MAX_UNKNOWN = 10_000


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the store said about one key hash, and when (monotonic seconds)."""

    key: ApiKey | None
    account: Account | None
    read_at: float


class KeyCache:
    """Bounded LRU tables of known and unknown key hashes, with the TTLs described above."""

    def __init__(self, ttl_s: float, negative_ttl_s: float, stale_ttl_s: float,
                 clock: Callable[[], float]) -> None:
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.stale_ttl_s = max(stale_ttl_s, ttl_s)
        self._clock = clock
        self._known: OrderedDict[str, Lookup] = OrderedDict()
        self._unknown: OrderedDict[str, Lookup] = OrderedDict()

    def fresh(self, key_hash: str) -> Lookup | None:
        """The lookup of ``key_hash`` if it is recent enough to be trusted without the store."""
        now = self._clock()
        found = self._known.get(key_hash)
        if found is not None and now - found.read_at < self.ttl_s:
            self._known.move_to_end(key_hash)
            return found
        missing = self._unknown.get(key_hash)
        if missing is not None and now - missing.read_at < self.negative_ttl_s:
            return missing
        return None

    def stale(self, key_hash: str) -> Lookup | None:
        """A known key read within ``stale_ttl_s``: what to go on while the store is down."""
        found = self._known.get(key_hash)
        if found is not None and self._clock() - found.read_at < self.stale_ttl_s:
            return found
        return None

    def put(self, key_hash: str, key: ApiKey | None, account: Account | None) -> Lookup:
        """Remember what the store said about ``key_hash`` just now."""
        lookup = Lookup(key, account, self._clock())
        table, limit = (self._known, MAX_KEYS) if key is not None else (self._unknown,
                                                                         MAX_UNKNOWN)
        if key is not None:
            self._unknown.pop(key_hash, None)
        table[key_hash] = lookup
        table.move_to_end(key_hash)
        while len(table) > limit:
            table.popitem(last=False)
        return lookup

    def clear(self) -> None:
        """Forget everything: the next request for any key reads the store."""
        self._known.clear()
        self._unknown.clear()

    def __len__(self) -> int:
        return len(self._known) + len(self._unknown)
