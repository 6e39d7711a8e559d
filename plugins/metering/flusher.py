"""The flusher: a background task that moves spooled records into the store, exactly once.

It reads a batch from the spool (in a thread), writes it with ``insert_usage_events`` (which
skips request ids the store already holds), and only then advances the folder's committed
position. A crash anywhere in between repeats the batch, and the repeat changes nothing: that
is the whole exactly-once argument. While the store fails, the batch stays where it is and the
flusher retries with exponential backoff (``retry_max_s`` at most), counting each failed round
in ``onyproxy_spool_flush_errors_total``, whatever failed.

Records the disk refused wait in the writer's memory; each round takes them from there
straight to the store (and gives them back if the store fails), so they never also reach the
disk. ``depth`` counts both: every record of this process not yet in the store.

Besides its own folder it adopts orphans: folders of gateway processes that died (their lock is
free). Those are written out and deleted, oldest first, so after ``kill -9`` and a restart (of
any worker, on any pid) nothing stays behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from onyproxy.storage import StorageError, UsageEvent
from plugins.metering.record import decode
from plugins.metering.spool import Position, SpoolDir
from plugins.metering.writer import SpoolWriter

log = logging.getLogger("onyproxy.metering")

ORPHAN_SCAN_S = 10.0  # how often other processes' folders are checked for dead owners
FIRST_RETRY_S = 0.5


class Flusher:
    """Writes spooled usage records to the store in the background."""

    def __init__(self, writer: SpoolWriter, root: Path, store: Callable[[], Any],
                 metrics: Any, *, batch_size: int, interval_s: float, retry_max_s: float,
                 on_stored: Callable[[list[UsageEvent]], None] = lambda events: None) -> None:
        self.writer = writer
        self.own = writer.directory
        self.root = root
        self._store = store
        self._metrics = metrics
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.retry_max_s = retry_max_s
        self.on_stored = on_stored
        self.committed = 0  # own records the store holds
        self.failures = 0  # failed store writes since start
        self.orphan_backlog = 0  # records read from orphans, not yet stored
        self._taken = 0  # records taken from the writer's memory, being stored
        self._commit_failing = False
        self._positions: dict[Path, Position] = {}
        self._orphans: dict[Path, SpoolDir] = {}
        self._next_scan = 0.0
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # one flush at a time: positions only move forward
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Records waiting for the store: in the spool, or in memory (the disk refused them)."""
        # Torn records skipped in the own folder were never counted as appended: clamp.
        return (max(0, self.writer.appended - self.committed) + self.orphan_backlog
                + self.writer.backlog + self._taken)

    def wake(self) -> None:
        """New records were synced to the spool. A full batch is written at once; fewer
        wait for the next tick (``flush_interval_s``), so that under load the store gets a
        few large writes rather than one per disk sync."""
        if self.depth >= self.batch_size:
            self._wake.set()
        self._report()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="onyproxy-metering-flusher")

    async def stop(self, deadline_s: float) -> None:
        """Stop the task, then try (once, within ``deadline_s``) to write what is left;
        whatever is not written stays in the spool for the next start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            async with asyncio.timeout(deadline_s):
                await self.flush()
        except (TimeoutError, StorageError) as exc:
            log.warning("metering: %d usage records stay in the spool for the next start "
                        "(%s)", self.depth, type(exc).__name__)
        except Exception as exc:  # a bug: the records stay, and stopping goes on
            log.exception("metering: the last flush failed: %s", type(exc).__name__)
        for orphan in self._orphans.values():
            orphan.release()

    async def flush(self) -> int:
        """Write everything waiting so far (memory, orphans, own folder); return how many
        records went to the store. Raises ``StorageError`` when the store fails."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> int:
        # Memory first: those records are the ones a kill would lose.
        written = await self._drain_memory()
        if time.monotonic() >= self._next_scan:
            self._next_scan = time.monotonic() + ORPHAN_SCAN_S
            await asyncio.to_thread(self._adopt_orphans)
        for path, orphan in sorted(self._orphans.items()):
            written += await self._drain(orphan, None)
            await asyncio.to_thread(orphan.remove)
            del self._orphans[path]
        written += await self._drain(self.own, self.writer.active)
        self._report()
        return written

    async def _run(self) -> None:
        delay = FIRST_RETRY_S
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that arrives as the wake-up does, and this loop would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except StorageError as exc:
                self._failed(exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            except Exception as exc:  # a bug must not stop metering; the records stay
                self._count_failure()
                log.exception("metering: flushing the spool failed: %s", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            if self.failures and delay > FIRST_RETRY_S:
                log.warning("metering: the store takes usage records again")
            delay = FIRST_RETRY_S

    async def _drain(self, source: SpoolDir, active: Callable[[], Position] | None) -> int:
        written = 0
        position = self._positions.get(source.path)
        if position is None:
            position = self._positions[source.path] = await asyncio.to_thread(source.committed)
        while True:
            limit = active() if active is not None else None
            batch = await asyncio.to_thread(source.read, position, self.batch_size, limit)
            if batch.skipped:
                log.warning("metering: skipped %d damaged record(s) in %s (a write cut short "
                            "by a crash)", batch.skipped, source.path)
            events = _decoded(batch.records, source.path)
            if active is None:
                self.orphan_backlog = len(events)  # waiting until the insert succeeds
            if events:
                await self._store().insert_usage_events(events)
                self.on_stored(events)
            if batch.end != position:
                await self._commit(source, batch.end)
                self._positions[source.path] = position = batch.end
            written += len(events)
            if active is not None:
                self.committed += len(batch.records) + batch.skipped
            else:
                self.orphan_backlog = 0
            if not batch.records and not batch.skipped:
                return written

    async def _drain_memory(self) -> int:
        """Store the records waiting in the writer's memory (the disk refused them)."""
        written = 0
        while records := self.writer.take(self.batch_size):
            self._taken = len(records)
            try:
                events = _decoded(records, self.own.path)
                if events:
                    await self._store().insert_usage_events(events)
            except BaseException:
                self.writer.give_back(records)  # first in line again, for disk or store
                raise
            finally:
                self._taken = 0
            self.on_stored(events)
            written += len(events)
        return written

    async def _commit(self, source: SpoolDir, end: Position) -> None:
        """Delete what the store holds and save the position; a position that cannot be
        saved (full disk) only makes a restart repeat idempotent store writes."""
        error = await asyncio.to_thread(source.commit, end)
        if error is None:
            self._commit_failing = False
            if self.writer.backlog:
                self.writer.retry()  # segments were deleted: the disk may take them now
            return
        if self.writer.metrics is not None:
            self.writer.metrics.write_error("commit")
        if not self._commit_failing:
            log.error("metering: cannot save the spool position in %s (%s); finished "
                      "segments are still deleted", source.path, error.strerror or error)
        self._commit_failing = True

    def _adopt_orphans(self) -> None:
        try:
            entries = sorted(os.scandir(self.root), key=_age)
        except FileNotFoundError:
            return
        for entry in entries:
            path = Path(entry.path)
            if (not entry.is_dir() or entry.name.startswith(".") or path == self.own.path
                    or path in self._orphans):
                continue  # hidden: a folder being set up by a starting process
            orphan = SpoolDir(path)
            if orphan.lock():
                log.info("metering: adopting the usage spool of a stopped process: %s", path)
                self._orphans[path] = orphan

    def _failed(self, exc: StorageError, delay: float) -> None:
        self._count_failure()
        if delay == FIRST_RETRY_S:
            log.error("metering: cannot write usage records to the store (%s); they wait in "
                      "the spool (%d now) and are retried", exc, self.depth)

    def _count_failure(self) -> None:
        self.failures += 1
        if self._metrics is not None:
            self._metrics.spool_flush_error()
        self._report()

    def _report(self) -> None:
        if self._metrics is not None:
            self._metrics.spool(self.depth)


def _age(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:  # another process adopted and removed it meanwhile
        return 0.0


def _decoded(records: list[bytes], where: Path) -> list[UsageEvent]:
    events = []
    for payload in records:
        try:
            events.append(decode(payload))
        except (ValueError, TypeError, KeyError) as exc:
            # The checksum matched, so this is not a torn write: a record this version cannot
            # read. Keep going; the log says where it was.
            log.error("metering: unreadable usage record in %s (%s)", where, type(exc).__name__)
    return events
