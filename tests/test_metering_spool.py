"""The usage spool on its own: framing, torn writes, group commit, segments, orphans, and the
flusher's exactly-once writes to a store that fails and comes back."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from onyproxy.storage import StorageError, UsageEvent, open_store
from plugins.metering.flusher import Flusher
from plugins.metering.record import decode, encode
from plugins.metering.spool import SpoolDir, frame, unframe
from plugins.metering.writer import SpoolWriter

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def payload(n: int) -> bytes:
    return encode(UsageEvent(request_id=f"r{n}", account_id="acc_a", key_id="key_1",
                             model="gpt-4o", provider="openai", input_tokens=n,
                             cost_usd=Decimal("0.000001") * n, flags=["estimated"],
                             created_at=T0 + timedelta(seconds=n)))


def own_dir(tmp_path: Path, name: str = "own") -> SpoolDir:
    path = tmp_path / "spool" / name
    path.mkdir(parents=True)
    spool = SpoolDir(path)
    assert spool.lock()
    return spool


class FlakyStore:
    """Delegates to a real store; ``down`` makes every usage insert fail like an outage."""

    def __init__(self, store) -> None:
        self.store = store
        self.down = False
        self.inserts = 0

    async def insert_usage_events(self, events):
        if self.down:
            raise StorageError("the database is down (test)")
        self.inserts += 1
        return await self.store.insert_usage_events(events)


def test_a_record_round_trips_through_its_frame_and_a_damaged_one_is_refused() -> None:
    line = frame(payload(1))
    assert unframe(line, 0) == (payload(1), len(line))
    damaged = line.replace(b"r1", b"r9")
    assert unframe(damaged, 0) == (None, len(line))
    assert unframe(line[:-1], 0) == (None, -1)  # no newline yet: incomplete


def test_event_encoding_keeps_money_exact_and_every_field() -> None:
    event = decode(payload(3))
    assert event.cost_usd == Decimal("0.000003") and event.flags == ["estimated"]
    assert event.created_at.tzinfo is not None and event.input_tokens == 3


def test_a_torn_last_record_of_a_closed_segment_is_skipped(tmp_path: Path) -> None:
    spool = own_dir(tmp_path)
    whole = frame(payload(1)) + frame(payload(2))
    spool.segment_path(1).write_bytes(whole + frame(payload(3))[:20])  # kill -9 mid-write
    spool.segment_path(2).write_bytes(frame(payload(4)))
    batch = spool.read(spool.committed(), 100)
    assert [decode(r).request_id for r in batch.records] == ["r1", "r2", "r4"]
    assert batch.skipped == 1 and batch.end == (3, 0)


def test_a_corrupt_record_in_the_middle_is_skipped_and_the_rest_read(tmp_path: Path) -> None:
    spool = own_dir(tmp_path)
    bad = frame(payload(2)).replace(b"r2", b"rX")
    spool.segment_path(1).write_bytes(frame(payload(1)) + bad + frame(payload(3)))
    batch = spool.read(spool.committed(), 100)
    assert [decode(r).request_id for r in batch.records] == ["r1", "r3"]
    assert batch.skipped == 1


def test_the_active_segment_is_read_only_up_to_what_was_written(tmp_path: Path) -> None:
    spool = own_dir(tmp_path)
    first = frame(payload(1))
    spool.segment_path(1).write_bytes(first + frame(payload(2))[:15])
    batch = spool.read((1, 0), 100, active=(1, len(first)))
    assert len(batch.records) == 1 and batch.end == (1, len(first)) and batch.skipped == 0


def test_commit_persists_the_position_and_deletes_finished_segments(tmp_path: Path) -> None:
    spool = own_dir(tmp_path)
    for number in (1, 2):
        spool.segment_path(number).write_bytes(frame(payload(number)) * 2)
    batch = spool.read(spool.committed(), 1)
    assert batch.end == (1, len(frame(payload(1))))
    spool.commit((2, 0))
    assert spool.segments() == [2]
    assert SpoolDir(spool.path).committed() == (2, 0)


def test_a_live_owner_keeps_its_folder_and_a_dead_ones_can_be_adopted(tmp_path: Path) -> None:
    spool = own_dir(tmp_path)
    assert not SpoolDir(spool.path).lock()  # held (flock conflicts even within one process)
    spool.release()  # what the kernel does when the owner dies
    adopter = SpoolDir(spool.path)
    assert adopter.lock()
    adopter.remove()
    assert not spool.path.exists()
    assert not SpoolDir(spool.path).lock()  # gone: nothing to adopt twice


async def test_writer_groups_concurrent_records_into_few_syncs(tmp_path: Path,
                                                               monkeypatch) -> None:
    syncs = []
    real_sync = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real_sync(fd)))
    writer = SpoolWriter(own_dir(tmp_path), segment_bytes=1 << 20)
    writer.start()
    results = []
    for n in range(300):
        results.append(writer.write(payload(n)))
        if n % 30 == 0:
            await asyncio.sleep(0)  # let the sync thread run now and then
    await writer.close()
    assert all(results) and writer.appended == 300
    assert len(syncs) < 300  # one sync covers every record that queued meanwhile
    batch = writer.directory.read((1, 0), 1000)
    assert sorted(decode(r).request_id for r in batch.records) == sorted(
        f"r{n}" for n in range(300))


async def test_writer_syncs_at_most_once_per_interval(tmp_path: Path, monkeypatch) -> None:
    """Back-to-back syncs would stall the event loop's writes (ext4 makes a write wait for a
    running fdatasync of its file): syncs are spaced by ``sync_interval_s`` at least."""
    synced_at = []
    real_sync = os.fdatasync
    monkeypatch.setattr(os, "fdatasync",
                        lambda fd: (synced_at.append(time.monotonic()), real_sync(fd)))
    writer = SpoolWriter(own_dir(tmp_path), segment_bytes=1 << 20, sync_interval_s=0.05)
    writer.start()
    for n in range(60):
        assert writer.write(payload(n))
        await asyncio.sleep(0.005)  # a record every 5 ms: ten per interval
    await writer.close()
    spaced = synced_at[:-1]  # the last one is the closing sync, which never waits
    gaps = [b - a for a, b in itertools.pairwise(spaced)]
    assert len(spaced) >= 2 and min(gaps) >= 0.049
    assert len(synced_at) < 60


async def test_closing_syncs_at_once_without_waiting_for_the_interval(tmp_path: Path,
                                                                      monkeypatch) -> None:
    syncs = []
    real_sync = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real_sync(fd)))
    writer = SpoolWriter(own_dir(tmp_path), segment_bytes=1 << 20, sync_interval_s=3600)
    writer.start()
    assert writer.write(payload(0))
    for _ in range(200):  # the first sync happens at once; the next not before an hour
        if syncs:
            break
        await asyncio.sleep(0.01)
    assert writer.write(payload(1))
    async with asyncio.timeout(10):  # a hang guard, not a speed test
        await writer.close()
    assert len(syncs) == 2
    batch = writer.directory.read((1, 0), 10)
    assert [decode(r).request_id for r in batch.records] == ["r0", "r1"]


async def test_writer_starts_a_new_segment_past_the_size_limit(tmp_path: Path) -> None:
    writer = SpoolWriter(own_dir(tmp_path), segment_bytes=2000)
    writer.start()
    for n in range(20):
        assert writer.write(payload(n))
    await writer.close()
    assert len(writer.directory.segments()) > 3
    batch = writer.directory.read((1, 0), 1000)
    assert [decode(r).request_id for r in batch.records] == [f"r{n}" for n in range(20)]


async def test_records_the_disk_refuses_are_kept_and_appended_once_when_it_takes_them(
        tmp_path: Path, monkeypatch) -> None:
    writer = SpoolWriter(own_dir(tmp_path), segment_bytes=1 << 20)
    writer.start()
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data)[:10])  # part of a record lands, then the disk is full
        raise OSError(28, "No space left on device")

    assert writer.write(payload(0))
    monkeypatch.setattr(os, "write", disk_full)
    assert not writer.write(payload(1))
    assert not writer.write(payload(2))  # waits behind r1, in order
    writer.retry()  # still full: nothing more lands, nothing torn stays
    monkeypatch.setattr(os, "write", real_write)
    assert not writer.write(payload(3))  # the kept ones go first: it waits too
    writer.retry()
    assert writer.backlog == 0 and writer.appended == 4
    await writer.close()
    batch = writer.directory.read((1, 0), 100)
    assert [decode(r).request_id for r in batch.records] == ["r0", "r1", "r2", "r3"]
    assert batch.skipped == 0  # the pieces the full disk took were cut off again


async def test_flusher_writes_every_record_once_across_an_outage(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/u.db")
    flaky = FlakyStore(store)
    writer = SpoolWriter(own_dir(tmp_path), segment_bytes=3000)
    writer.start()
    flusher = Flusher(writer, tmp_path / "spool", lambda: flaky, None, batch_size=7,
                      interval_s=60, retry_max_s=1)
    try:
        for n in range(20):
            writer.write(payload(n))
        assert await flusher.flush() == 20 and flusher.depth == 0
        flaky.down = True
        for n in range(20, 50):
            writer.write(payload(n))
        with pytest.raises(StorageError):
            await flusher.flush()
        assert flusher.depth == 30
        flaky.down = False
        assert await flusher.flush() == 30 and flusher.depth == 0
        events = await store.list_usage_events(limit=100)
        assert sorted(e.request_id for e in events) == sorted(f"r{n}" for n in range(50))
        assert writer.directory.segments() == [writer.active()[0]]  # finished ones deleted
    finally:
        await writer.close()
        await store.close()


async def test_an_orphaned_folder_is_replayed_once_then_removed(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/u.db")
    dead = own_dir(tmp_path, "111-dead")
    dead.segment_path(1).write_bytes(b"".join(frame(payload(n)) for n in range(5)))
    dead.commit((1, len(frame(payload(0)))))  # r0 was stored before the crash ...
    await store.insert_usage_events([decode(payload(0)), decode(payload(1))])  # ... and r1
    dead.release()  # its process died
    writer = SpoolWriter(own_dir(tmp_path, "222-live"), segment_bytes=1 << 20)
    writer.start()
    flusher = Flusher(writer, tmp_path / "spool", lambda: store, None, batch_size=100,
                      interval_s=60, retry_max_s=1)
    try:
        assert await flusher.flush() == 4  # r1 .. r4 read; r1 already stored: skipped
        events = await store.list_usage_events()
        assert [e.request_id for e in events] == [f"r{n}" for n in range(5)]
        assert not dead.path.exists()
    finally:
        await writer.close()
        await store.close()


def test_a_new_spool_folder_is_private(tmp_path):
    from plugins.metering.plugin import _own_folder

    root = tmp_path / "spool"
    own = _own_folder(root)
    assert (root.stat().st_mode & 0o777, own.path.stat().st_mode & 0o777) == (0o700, 0o700)
