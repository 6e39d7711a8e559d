"""The spool writer: records appended on the event loop, synced to disk by a thread.

The split is Redis's AOF with ``appendfsync everysec``, tightened: ``write(2)`` of one record
(a few hundred bytes into the kernel's page cache, microseconds) happens on the event loop, so
a request's record is in the file before its answer leaves, with no thread hop and no wait;
``fdatasync`` (milliseconds, or much longer on a busy disk) happens only in the sync thread.
The thread syncs when something was written since its last sync, at most once per
``sync_interval_s`` (group commit: one sync covers every record that arrived meanwhile), and
then tells the flusher. Why an interval and not a sync as soon as anything was written: under
load that meant syncing back to back, and every sync costs kernel time and wakes two threads
that then compete with the event loop for its core; with 20 ms between syncs the gateway used
~20 % less CPU per request (``make bench`` A/B, full pipeline, c64 and c1), and a power cut
can lose at most the records of the last 20 ms.

A record that has been written survives the gateway process being killed (``kill -9``
included); once synced it survives a crash of the machine.

**When the disk refuses** (full, read-only, an I/O error), nothing is lost and nothing is
written twice:

- a record the disk took only in part is cut off again (``ftruncate`` needs no space), so a
  segment never holds a torn record that a reader would skip or a retry would repeat;
- the record, and every later one, waits in memory (the *backlog*, oldest first; its size is
  bounded by the plugin, ``memory_backlog_mb``); the flusher takes records from it straight
  to the store, and every second the writer appends to the disk what is still waiting, each
  record once, from the first not yet written;
- the segment is closed if it holds records (once, not per failed write: an empty segment is
  never replaced), so the flusher can delete it as soon as the store holds them: that is what
  frees the space on a disk the spool alone filled;
- every failure counts in ``onyproxy_spool_write_errors_total{op}``, the backlog shows in
  ``onyproxy_spool_memory_backlog``; the log says when the trouble starts and ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from plugins.metering.spool import Position, SpoolDir, frame

log = logging.getLogger("onyproxy.metering")

RETRY_S = 1.0  # pause before writing again after the disk refused a write
SYNC_INTERVAL_S = 0.02  # the least time between two syncs (see the module docstring)
RETRY_CHUNK = 256 * 1024  # bytes of the backlog appended with one write(2)


class SpoolWriter:
    """Appends records to ``directory``'s segments; a thread of its own syncs them.

    ``metrics`` (optional) gets ``write_error(op)`` and ``backlog(records, bytes)``.
    """

    def __init__(self, directory: SpoolDir, segment_bytes: int,
                 on_synced: Callable[[], None] = lambda: None,
                 sync_interval_s: float = SYNC_INTERVAL_S,
                 backlog_limit: int = 64 * 1024 * 1024, metrics: Any = None) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.sync_interval_s = sync_interval_s
        self.on_synced = on_synced  # called on the event loop after each fdatasync
        self.backlog_limit = backlog_limit  # bytes of records in memory that make it "full"
        self.metrics = metrics
        self.appended = 0  # records written so far (the flusher derives the depth from it)
        self.write_errors = 0  # failed write, truncate, open and sync calls
        self._segment = max(self.directory.segments(), default=0) + 1
        self._written = 0
        self._torn = False  # the segment's tail could not be cut back: never append to it
        self._fd = -1
        self._backlog: deque[bytes] = deque()  # payloads not written yet, oldest first
        self.backlog_bytes = 0
        self._failing = False  # writing fails now (logged once per episode, not per call)
        self._sync_failing = False
        self._retry: asyncio.TimerHandle | None = None
        self._cond = threading.Condition()
        self._dirty = False
        self._retired: list[int] = []  # closed segments' descriptors: synced, then closed
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the first segment (raises ``OSError`` when the folder refuses it) and start
        the sync thread."""
        self._loop = asyncio.get_running_loop()
        self._open_segment()
        self._thread = threading.Thread(target=self._sync_loop, name="onyproxy-spool-sync",
                                        daemon=True)
        self._thread.start()

    def active(self) -> Position:
        """The segment being written and how many of its bytes are written (a safe end for
        readers: never a partial record)."""
        return self._segment, self._written

    @property
    def backlog(self) -> int:
        """Records waiting in memory (the disk refused them)."""
        return len(self._backlog)

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def full(self) -> bool:
        """Whether the memory backlog reached its limit."""
        return self.backlog_bytes >= self.backlog_limit

    def write(self, payload: bytes) -> bool:
        """Append one record now; False when it waits in memory (the disk refused it, or
        refused earlier records that must go first)."""
        if self._closing:
            raise RuntimeError("the spool is closed")
        if not self._backlog and self._append([frame(payload)]) == 1:
            self.appended += 1
            self._after_write()
            return True
        self._keep([payload])
        self._schedule_retry()
        return False

    def take(self, limit: int) -> list[bytes]:
        """Remove up to ``limit`` of the oldest records in memory and return them (the
        flusher writes them to the store; :meth:`give_back` if that fails)."""
        taken = [self._backlog.popleft() for _ in range(min(limit, len(self._backlog)))]
        self.backlog_bytes -= sum(map(len, taken))
        self._report()
        return taken

    def give_back(self, payloads: list[bytes]) -> None:
        """Records :meth:`take` returned that the store did not take: first in line again."""
        self._backlog.extendleft(reversed(payloads))
        self.backlog_bytes += sum(map(len, payloads))
        self._report()
        if payloads:
            self._schedule_retry()

    def retry(self) -> None:
        """Append what waits in memory, each record once, as far as the disk takes it."""
        written = 0
        while self._backlog and not self._closing:
            chunk, size = [], 0
            for payload in self._backlog:
                if chunk and size >= RETRY_CHUNK:
                    break
                chunk.append(frame(payload))
                size += len(chunk[-1])
            done = self._append(chunk)
            for _ in range(done):
                self.backlog_bytes -= len(self._backlog.popleft())
            if done:
                written += done
                self.appended += done
                self._after_write()
            if done < len(chunk):
                self._schedule_retry()
                break
        self._report()
        if written and not self._backlog:
            log.warning("metering: the usage spool in %s is writable again (%d records from "
                        "memory written)", self.directory.path, written)

    async def close(self) -> None:
        """Try once more to write what waits in memory, sync, stop the thread."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self.retry()
        if self._backlog:
            log.error("metering: %d usage records could not be written to the spool in %s "
                      "and are lost with this process", len(self._backlog),
                      self.directory.path)
            if self.metrics is not None:
                self.metrics.lose(len(self._backlog))
            self._backlog.clear()
            self.backlog_bytes = 0
            self._report()
        with self._cond:
            self._closing = True
            self._retired.append(self._fd)
            self._fd = -1
            self._cond.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    # --- the event loop side ------------------------------------------------------------
    def _append(self, frames: list[bytes]) -> int:
        """Write ``frames`` at the end of the segment; how many were written whole."""
        if self._fd < 0 and not self._reopen():
            return 0
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, view[done:])
        except OSError as exc:
            return self._refused(frames, done, exc)
        self._written += len(data)
        self._failing = False
        return len(frames)

    def _refused(self, frames: list[bytes], done: int, exc: OSError) -> int:
        """The disk took ``done`` bytes of ``frames``: keep the whole records, cut off the
        rest, and close the segment if it holds records (see the module docstring)."""
        whole = kept = 0
        for data in frames:
            if kept + len(data) > done:
                break
            kept, whole = kept + len(data), whole + 1
        self._failed("write", exc)
        self._written += kept
        try:  # always: a failing disk may have kept bytes it did not report
            os.ftruncate(self._fd, self._written)
        except OSError as cut:
            self._failed("truncate", cut)
            self._torn = True  # appending after a piece would damage the next record
        if self._written or self._torn:
            self._next_segment()
        return whole

    def _keep(self, payloads: Iterable[bytes]) -> None:
        for payload in payloads:
            self._backlog.append(payload)
            self.backlog_bytes += len(payload)
        self._report()

    def _schedule_retry(self) -> None:
        if self._retry is None and self._loop is not None and not self._closing:
            self._retry = self._loop.call_later(RETRY_S, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if self._backlog and not self._closing:
            self.retry()

    def _after_write(self) -> None:
        if self._written >= self.segment_bytes:
            self._next_segment()
        # Already dirty: the thread has not taken its snapshot yet, so its next sync covers
        # this write too (it clears the flag before it syncs); no need to wake it again.
        if not self._dirty:
            with self._cond:
                self._dirty = True
                self._cond.notify()

    def _next_segment(self) -> None:
        with self._cond:
            if self._fd >= 0:
                self._retired.append(self._fd)  # the thread syncs and closes it
            self._fd = -1
            self._segment += 1
            self._written = 0
            self._torn = False
        self._reopen()

    def _reopen(self) -> bool:
        """Open the current segment; False (counted, retried later) when that fails."""
        try:
            self._open_segment()
        except OSError as exc:
            self._failed("open", exc)
            return False
        return True

    def _open_segment(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(self.directory.segment_path(self._segment), flags, 0o600)

    def _failed(self, op: str, exc: OSError) -> None:
        """Count a failed ``op``; log when an episode of trouble starts, not every time."""
        self.write_errors += 1
        if self.metrics is not None:
            self.metrics.write_error(op)
        if not self._failing:
            log.error("metering: cannot %s the usage spool in %s (%s); records wait in memory "
                      "and go to the store from there, or to the disk once it takes them",
                      op, self.directory.path, exc.strerror or exc)
        self._failing = True

    def _report(self) -> None:
        if self.metrics is not None:
            self.metrics.backlog(len(self._backlog), self.backlog_bytes)

    # --- the sync thread ----------------------------------------------------------------
    def _sync_loop(self) -> None:
        next_sync = 0.0
        while True:
            with self._cond:
                while not (self._dirty or self._retired or self._closing):
                    self._cond.wait()
                # Records written until the interval is over join this sync; closing does not
                # wait (the last records are synced at once).
                while not self._closing and (wait := next_sync - time.monotonic()) > 0:
                    self._cond.wait(wait)
                next_sync = time.monotonic() + self.sync_interval_s
                fd, retired, closing = self._fd, self._retired, self._closing
                self._dirty, self._retired = False, []
            for old in retired:
                self._sync(old)
                with contextlib.suppress(OSError):
                    os.close(old)
            if fd >= 0:
                self._sync(fd)
            self._call(self.on_synced)
            if closing:
                return

    def _sync(self, fd: int) -> None:
        if fd < 0:
            return
        try:
            os.fdatasync(fd)
        except OSError as exc:
            # The records stay readable in the page cache, so the flusher still stores them;
            # only their survival of a machine crash is in doubt until the store has them.
            self.write_errors += 1
            if self.metrics is not None:
                self.metrics.write_error("sync")
            if not self._sync_failing:
                log.error("metering: cannot sync the usage spool in %s (%s)",
                          self.directory.path, exc.strerror or exc)
            self._sync_failing = True
            return
        self._sync_failing = False

    def _call(self, fn: Callable[[], object]) -> None:
        try:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(fn)
        except RuntimeError:
            pass  # the loop is closed: the process is stopping, nobody waits any more
