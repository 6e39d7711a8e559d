"""The audit chain's head, written down outside the database.

A keyed chain (see :mod:`onyproxy.storage.audit_chain`) cannot be re-hashed without the key,
but entries cut off its end, or a whole chain replaced by one of another key, leave no trace
inside the database. So the gateway appends the head (``<time> <seq>:<hash>``) to the anchor
file at start and once a day, and shows its number as ``onyproxy_audit_head_seq``;
``onyproxy audit verify`` checks every head in the file is still in the chain. Copy the file
elsewhere (a log shipper, a backup) for the strongest guarantee.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from onyproxy.config.model import GatewayConfig
from onyproxy.logs import log_crash
from onyproxy.privacy.audit import arm_audit
from onyproxy.storage import Store, url_scheme, utcnow
from onyproxy.storage.audit_chain import SWITCH_TARGET, derive_key

log = logging.getLogger("onyproxy.audit")

ANCHOR_FILE = "audit-anchor.log"
DAY_S = 86400.0


def anchor_path(config: GatewayConfig) -> Path | None:
    """``security.audit_anchor_file``, else next to the SQLite file; ``None`` (the metric
    only) for ``:memory:`` and for MongoDB, whose gateways run on several machines: there,
    name a file on storage the database's writers cannot change."""
    if config.security.audit_anchor_file:
        return Path(config.security.audit_anchor_file).expanduser()
    if url_scheme(config.storage.url) != "sqlite":
        return None
    from onyproxy.storage.sqlite import path_from_url
    path = path_from_url(config.storage.url)
    return None if path == ":memory:" else Path(path).parent / ANCHOR_FILE


def read_anchors(path: Path | None) -> dict[int, str]:
    """``{seq: hash}`` of every head in the anchor file (empty when there is none)."""
    found: dict[int, str] = {}
    if path is None or not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        number, _, digest = line.rpartition(" ")[2].partition(":")
        if number.isdigit() and len(digest) == 64:
            found[int(number)] = digest
    return found


async def head(store: Store) -> tuple[int, str] | None:
    """The last entry of the chain as ``(seq, hash)``; ``None`` for an empty chain."""
    # Entries are numbered 1..n, so the head is usually within the last page of the count;
    # stray unchained entries (counted, not numbered) would make that start too late.
    for start in (max(0, await store.count_audit() - 1000), 0):
        last, after = None, start
        while page := await store.list_audit_chain(after_seq=after, limit=1000):
            last, after = page[-1], page[-1].seq or 0
        if last is not None:
            return last.seq or 0, last.hash or ""
    return None


def write_anchor(path: Path, seq: int, digest: str) -> None:
    """Append one head (``O_APPEND``: lines from several workers never interleave)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{utcnow().isoformat(timespec='seconds')} {seq}:{digest}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


async def open_audit(store: Store, config: GatewayConfig) -> None:
    """Seal the audit log with the key from now on; a chain without a switch point gets one,
    unless the anchor file shows it was keyed before (then it was re-hashed: left for
    ``audit verify`` to report, never blessed by a new switch point)."""
    key = derive_key(config.security.audit_key, config.security.key_pepper)
    if read_anchors(anchor_path(config)) and \
            not await store.list_audit(target=SWITCH_TARGET, limit=1):
        store.audit_key = key
        log.error("the audit log has no keyed entries although the anchor file records "
                  "some: it was rewritten; run 'onyproxy audit verify'")
        return
    if await arm_audit(store, key):
        log.info("audit log: new entries are sealed with the audit key from now on")
        # Written down at once: a later rewrite of the whole chain without the key (which
        # would look like an old unkeyed chain) then contradicts the file.
        path, found = anchor_path(config), await head(store)
        if path is not None and found is not None:
            await asyncio.to_thread(write_anchor, path, *found)


class AnchorJob:
    """Appends the head to the anchor file now and every ``interval_s``; ``on_head(seq)``
    reports it (the metric)."""

    def __init__(self, store: Store, path: Path | None, on_head: Callable[[int], None],
                 interval_s: float = DAY_S) -> None:
        self.store, self.path, self.on_head, self.interval_s = store, path, on_head, interval_s
        self._task: asyncio.Task[None] | None = None

    async def anchor(self) -> tuple[int, str] | None:
        found = await head(self.store)
        if found is not None:
            self.on_head(found[0])
            if self.path is not None:
                await asyncio.to_thread(write_anchor, self.path, *found)
        return found

    async def start(self) -> None:
        """Anchor now (so the metric is there once the gateway answers), then daily."""
        await self._tick()
        self._task = asyncio.create_task(self._loop(), name="onyproxy-audit-anchor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._tick()

    async def _tick(self) -> None:
        try:
            await self.anchor()
        except Exception as exc:  # the database is down: try again next time
            log_crash("audit anchor", exc)
