"""The spool on disk: a folder of append-only segment files, a committed position, a lock.

Each gateway process owns one folder under the spool root (``<pid>-<random>``), holding:

- ``seg-00000001.log`` ... : records, one per line, ``<crc32 as 8 hex digits> <JSON>\\n``.
  A record whose line is incomplete or whose checksum does not match (a write torn by
  ``kill -9`` or a power cut) is detected and skipped, never half-read;
- ``committed``: ``{"segment": n, "offset": k}``, how far the store already holds the records.
  It is advisory: losing it (or an older copy surviving a crash) only makes records be written
  to the store again, which the store ignores (idempotent on the request id);
- ``lock``: ``flock``-ed by the owner for its whole life. The kernel drops the lock when the
  process dies, however it dies, so another process can tell a dead owner's folder (an
  orphan) from a live one and adopt it: write what is left, then delete the folder.

Everything here is blocking file I/O: call it from a thread, never from the event loop.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

Position = tuple[int, int]  # (segment number, byte offset)

_PREFIX = "seg-"
_SUFFIX = ".log"
READ_CHUNK = 4 * 1024 * 1024  # bytes read at a time; a record is about a kilobyte


def frame(payload: bytes) -> bytes:
    """One record as written: checksum, space, payload (no newline inside), newline."""
    return b"%08x %b\n" % (zlib.crc32(payload), payload)


def unframe(data: bytes, start: int) -> tuple[bytes | None, int]:
    """The record whose line starts at ``start``: ``(payload, next)``; ``(None, next)`` for a
    damaged line; ``(None, -1)`` when the line is not complete."""
    end = data.find(b"\n", start)
    if end < 0:
        return None, -1
    line = data[start:end]
    if len(line) > 9 and line[8:9] == b" ":
        payload = line[9:]
        try:
            if int(line[:8], 16) == zlib.crc32(payload):
                return payload, end + 1
        except ValueError:
            pass
    return None, end + 1


@dataclass
class Batch:
    """Records read from a spool folder; ``end`` is the position after the last one."""

    records: list[bytes] = field(default_factory=list)
    end: Position = (1, 0)
    skipped: int = 0  # damaged records passed over


class SpoolDir:
    """One spool folder (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None

    def segment_path(self, number: int) -> Path:
        return self.path / f"{_PREFIX}{number:08d}{_SUFFIX}"

    def segments(self) -> list[int]:
        """Numbers of the segment files present, in order."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        return sorted(int(n[len(_PREFIX):-len(_SUFFIX)]) for n in names
                      if n.startswith(_PREFIX) and n.endswith(_SUFFIX)
                      and n[len(_PREFIX):-len(_SUFFIX)].isdigit())

    # --- ownership ----------------------------------------------------------------------
    def lock(self) -> bool:
        """Take the folder's lock without waiting; False when a live process holds it (or the
        folder went away: another process adopted and removed it)."""
        try:
            fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        if not self.path.is_dir():  # removed between open and flock
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove(self) -> None:
        """Delete the folder (its records are all in the store), then let go of the lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()

    # --- the committed position ---------------------------------------------------------
    def committed(self) -> Position:
        """Where reading resumes: the saved position, or the start of the first segment."""
        try:
            saved = json.loads((self.path / "committed").read_text())
            position = (int(saved["segment"]), int(saved["offset"]))
        except (OSError, ValueError, KeyError, TypeError):
            position = (0, 0)
        first = next(iter(self.segments()), position[0])
        return max(position, (first, 0))

    def commit(self, position: Position) -> OSError | None:
        """Delete the segments before ``position``, then save it (write, then rename; no
        fsync: a lost update only repeats idempotent store writes). Deleting comes first: on
        a full disk the position file cannot be written, and only deleting frees the space.
        Losing the position is harmless (:meth:`committed` starts at the first segment left),
        so a failed save is returned for the caller to report, not raised."""
        for number in self.segments():
            if number < position[0]:
                self.segment_path(number).unlink(missing_ok=True)
        # A name of its own per writer: a flush cut short by shutdown may still be finishing
        # its commit in a thread while the final flush commits.
        tmp = self.path / f"committed.{threading.get_ident()}.tmp"
        try:
            tmp.write_text(json.dumps({"segment": position[0], "offset": position[1]}))
            os.replace(tmp, self.path / "committed")
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            return exc
        return None

    # --- reading ------------------------------------------------------------------------
    def read(self, start: Position, limit: int, active: Position | None = None) -> Batch:
        """Up to ``limit`` records from ``start`` on. ``active`` is the segment the owner is
        still writing and how many bytes of it are written: read no further than that. Every
        other segment is closed: a damaged or incomplete tail there is skipped."""
        batch = Batch(end=start)
        for number in self.segments():
            segment = batch.end[0]
            if number < segment:
                continue
            if number > segment:
                batch.end = (number, 0)
            if active is not None and number > active[0]:
                break
            is_active = active is not None and number == active[0]
            self._read_segment(batch, limit, active[1] if is_active else None)
            if len(batch.records) >= limit or is_active:
                break
        return batch

    def _read_segment(self, batch: Batch, limit: int, written: int | None) -> None:
        number, offset = batch.end
        path = self.segment_path(number)
        try:
            size = path.stat().st_size if written is None else written
            with path.open("rb") as f:
                while offset < size and len(batch.records) < limit:
                    f.seek(offset)
                    data = f.read(min(READ_CHUNK, size - offset))
                    used = _parse(data, batch, limit)
                    if used == 0:  # an incomplete last line
                        if written is None:
                            batch.skipped += 1  # closed segment: a torn final write
                            offset = size
                        break
                    offset += used
        except FileNotFoundError:
            offset = 0
            size = 0
        finished = written is None and offset >= size
        batch.end = (number + 1, 0) if finished else (number, offset)


def _parse(data: bytes, batch: Batch, limit: int) -> int:
    """Append the complete records in ``data``; return how many bytes they used."""
    used = 0
    while len(batch.records) < limit:
        payload, following = unframe(data, used)
        if following < 0:
            break
        if payload is None:
            batch.skipped += 1
        else:
            batch.records.append(payload)
        used = following
    return used
