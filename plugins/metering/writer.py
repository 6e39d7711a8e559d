"""The spool writer: one thread that appends records to this process's segment files.

Group commit. Requests hand their record to :meth:`SpoolWriter.write` (the event loop only
appends to a list); the thread takes everything queued, writes it with one ``write`` call,
tells the waiting requests, then ``fdatasync``-s the file, and tells the flusher. While one
``fdatasync`` runs, the next records queue up, so under load one sync covers many records and
at rest a record is synced within one disk sync of its arrival. The loop never touches the
disk and never waits for a sync.

What a request waits for is the ``write``: from then on the record is in the kernel's page
cache, so it survives the gateway process being killed (even ``kill -9``); the ``fdatasync``
after it makes it survive a crash of the machine. See the plugin docstring for what "never
lost" means as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

from plugins.metering.spool import Position, SpoolDir, frame

log = logging.getLogger("onyproxy.metering")

RETRY_S = 1.0  # pause before writing again after the disk refused a write


class SpoolWriter:
    """Appends records to ``directory``'s segments from a thread of its own."""

    def __init__(self, directory: SpoolDir, segment_bytes: int,
                 on_synced: Callable[[], None] = lambda: None) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.on_synced = on_synced  # called on the event loop after each fdatasync
        self.appended = 0  # records written so far (read by the flusher for the depth)
        self._cond = threading.Condition()
        self._queue: list[tuple[bytes, asyncio.Future[bool]]] = []
        self._closing = False
        self._segment = max(self.directory.segments(), default=0) + 1
        self._written = 0
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._open_segment()
        self._thread = threading.Thread(target=self._run, name="onyproxy-spool-writer",
                                        daemon=True)
        self._thread.start()

    def active(self) -> Position:
        """The segment being written and how many of its bytes are written (a safe end for
        readers: never a partial record)."""
        with self._cond:
            return self._segment, self._written

    async def write(self, payload: bytes, timeout_s: float) -> bool:
        """Queue one record and wait (at most ``timeout_s``) until it is written to the file;
        False when it is not (yet): the wait timed out or the disk refused the write. The
        record then stays queued in memory and is written when the disk takes it."""
        assert self._loop is not None, "start() first"
        done: asyncio.Future[bool] = self._loop.create_future()
        with self._cond:
            if self._closing:
                raise RuntimeError("the spool is closed")
            self._queue.append((frame(payload), done))
            self._cond.notify()
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(done)
        except TimeoutError:
            return False

    async def close(self) -> None:
        """Write and sync what is queued, then stop the thread and close the file."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    # --- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while batch := self._next_batch():
                self._write(batch)
        finally:
            if self._fd >= 0:
                os.close(self._fd)

    def _next_batch(self) -> list[tuple[bytes, asyncio.Future[bool]]]:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            batch, self._queue = self._queue, []
            return batch

    def _write(self, batch: list[tuple[bytes, asyncio.Future[bool]]]) -> None:
        data = b"".join(record for record, _ in batch)
        while not self._write_all(data):
            self._release(batch, False)  # requests go on; the records stay here
            time.sleep(RETRY_S)
            # A failed write may have left part of a record: never append after it. Readers
            # take that segment as closed and skip its torn tail.
            self._next_segment()
        with self._cond:
            self._written += len(data)
            self.appended += len(batch)
        self._release(batch, True)
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            log.error("metering: cannot sync the usage spool (%s)", exc.strerror)
        self._call(self.on_synced)
        if self._written >= self.segment_bytes:
            self._next_segment()

    def _write_all(self, data: bytes) -> bool:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.error("metering: cannot write the usage spool in %s (%s); records are "
                          "kept in memory until the disk takes them", self.directory.path,
                          exc.strerror)
            return False
        if self._failing_since is not None:
            log.warning("metering: the usage spool is writable again")
            self._failing_since = None
        return True

    def _next_segment(self) -> None:
        """Close the current segment and start the next one (a failed open is retried by
        the next write, which then fails on the closed descriptor)."""
        if self._fd >= 0:
            for step in (os.fdatasync, os.close):
                with contextlib.suppress(OSError):
                    step(self._fd)
            self._fd = -1
        with self._cond:
            self._segment += 1
            self._written = 0
        try:
            self._open_segment()
        except OSError:
            self._fd = -1

    def _open_segment(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(self.directory.segment_path(self._segment), flags, 0o600)

    def _release(self, batch: list[tuple[bytes, asyncio.Future[bool]]], written: bool) -> None:
        futures = [done for _, done in batch]
        self._call(lambda: [f.set_result(written) for f in futures if not f.done()])

    def _call(self, fn: Callable[[], object]) -> None:
        try:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(fn)
        except RuntimeError:
            pass  # the loop is closed: the process is stopping, nobody waits any more
