"""The spool when its disk fails (injected faults: ENOSPC on write, fsync and rename): nothing
lost, nothing written twice, no file per failure, the memory backlog goes to the store, and
every failure shows in the metrics."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from test_metering_spool import FlakyStore, own_dir, payload

from onyproxy.storage import StorageError, open_store
from plugins.metering.flusher import Flusher
from plugins.metering.record import decode
from plugins.metering.spool import SpoolDir, frame
from plugins.metering.spool_metrics import SpoolMetrics
from plugins.metering.writer import SpoolWriter

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


class Disk:
    """``os.write`` on a disk of ``quota`` bytes for the files of one folder: a write takes
    what still fits (a short count, as write(2) returns) and fails with ENOSPC when nothing
    does. Deleting files frees their space, as on a real disk."""

    def __init__(self, folder: Path, quota: int, real_write=os.write) -> None:
        self.folder, self.quota, self.real_write = folder, quota, real_write
        self.failures = 0

    def used(self) -> int:
        return sum(entry.stat().st_size for entry in os.scandir(self.folder)
                   if entry.name.startswith("seg-"))

    def write(self, fd: int, data) -> int:
        room = self.quota - self.used()
        if room <= 0:
            self.failures += 1
            raise ENOSPC
        return self.real_write(fd, bytes(data)[:room])


def refuse_everything(fd: int, data) -> int:
    raise ENOSPC


def ids_on_disk(spool: SpoolDir) -> tuple[list[str], int]:
    batch = spool.read((0, 0), 100_000)
    return [decode(r).request_id for r in batch.records], batch.skipped


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def store(tmp_path):
    store = await open_store(f"sqlite:///{tmp_path}/u.db")
    yield store
    await store.close()


async def stored_ids(store) -> list[str]:
    return [e.request_id for e in await store.list_usage_events(limit=100_000)]


def test_commit_deletes_finished_segments_even_when_the_position_cannot_be_saved(
        tmp_path: Path, monkeypatch) -> None:
    spool = own_dir(tmp_path)
    for number in (1, 2, 3):
        spool.segment_path(number).write_bytes(frame(payload(number)))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)  # the rename of the position file fails
    error = spool.commit((3, 0))
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert spool.segments() == [3]  # the space is freed all the same
    assert SpoolDir(spool.path).committed() == (3, 0)  # resumes at the first segment left
    assert not list(spool.path.glob("committed*"))  # no temp file left to fill the disk


async def test_a_failing_disk_never_opens_a_segment_per_failed_write(tmp_path: Path,
                                                                     monkeypatch) -> None:
    writer = SpoolWriter(own_dir(tmp_path), segment_bytes=1 << 20)
    writer.start()
    assert writer.write(payload(0))
    monkeypatch.setattr(os, "write", refuse_everything)
    for n in range(1, 200):
        assert not writer.write(payload(n))
        if n % 20 == 0:
            writer.retry()
    monkeypatch.undo()
    # One new segment (the one holding r0 was closed so that it can be deleted), not 200.
    assert len(writer.directory.segments()) <= 2
    writer.retry()
    await writer.close()
    ids, skipped = ids_on_disk(writer.directory)
    assert ids == [f"r{n}" for n in range(200)] and skipped == 0


async def test_a_record_the_full_disk_took_in_part_is_cut_off_and_written_once(
        tmp_path: Path, monkeypatch) -> None:
    spool = own_dir(tmp_path)
    disk = Disk(spool.path, quota=len(frame(payload(0))) * 2 + 20)  # r0, r1, 20 bytes of r2
    monkeypatch.setattr(os, "write", disk.write)
    writer = SpoolWriter(spool, segment_bytes=1 << 20)
    writer.start()
    results = [writer.write(payload(n)) for n in range(6)]
    assert results == [True, True, False, False, False, False]
    writer.retry()  # still full: nothing is repeated, nothing torn stays
    assert disk.used() == 2 * len(frame(payload(0)))
    disk.quota = 1 << 20  # space returns
    writer.retry()
    await writer.close()
    ids, skipped = ids_on_disk(spool)
    assert ids == [f"r{n}" for n in range(6)]  # each once, in order
    assert skipped == 0  # no torn piece for a replay to skip (or a restart to repeat)


async def test_records_the_disk_refuses_go_straight_to_the_store_exactly_once(
        tmp_path: Path, monkeypatch, store) -> None:
    writer = SpoolWriter(own_dir(tmp_path), segment_bytes=1 << 20)
    writer.start()
    flusher = Flusher(writer, tmp_path / "spool", lambda: store, None, batch_size=7,
                      interval_s=60, retry_max_s=1)
    monkeypatch.setattr(os, "write", refuse_everything)
    for n in range(30):
        writer.write(payload(n))
    assert writer.backlog == 30 and flusher.depth == 30
    assert await flusher.flush() == 30
    assert writer.backlog == 0 and flusher.depth == 0
    monkeypatch.undo()
    writer.retry()
    assert await flusher.flush() == 0
    await writer.close()
    assert ids_on_disk(writer.directory) == ([], 0)  # in the store, so never on the disk
    assert sorted(await stored_ids(store)) == sorted(f"r{n}" for n in range(30))


async def test_with_disk_and_store_down_records_wait_in_memory_then_reach_both_once(
        tmp_path: Path, monkeypatch, store) -> None:
    flaky = FlakyStore(store)
    writer = SpoolWriter(own_dir(tmp_path), segment_bytes=1 << 20)
    writer.start()
    flusher = Flusher(writer, tmp_path / "spool", lambda: flaky, None, batch_size=100,
                      interval_s=60, retry_max_s=1)
    flaky.down = True
    monkeypatch.setattr(os, "write", refuse_everything)
    for n in range(40):
        writer.write(payload(n))
    with pytest.raises(StorageError):
        await flusher.flush()
    assert writer.backlog == 40 and flusher.depth == 40  # given back, nothing dropped
    monkeypatch.undo()  # the disk first: the records become durable
    writer.retry()
    assert writer.backlog == 0 and flusher.depth == 40
    flaky.down = False
    assert await flusher.flush() == 40 and flusher.depth == 0
    await writer.close()
    assert sorted(await stored_ids(store)) == sorted(f"r{n}" for n in range(40))


async def test_a_disk_the_spool_alone_filled_is_freed_once_the_store_has_the_records(
        tmp_path: Path, monkeypatch, store) -> None:
    """The issue's case: a segment larger than the disk fills it; the records are all in the
    store; the segment is closed so the flusher can delete it, and writing goes on."""
    spool = own_dir(tmp_path)
    disk = Disk(spool.path, quota=20 * len(frame(payload(0))))
    monkeypatch.setattr(os, "write", disk.write)
    writer = SpoolWriter(spool, segment_bytes=1 << 30)  # never rotated for its size
    writer.start()
    flusher = Flusher(writer, tmp_path / "spool", lambda: store, None, batch_size=500,
                      interval_s=60, retry_max_s=1)
    for n in range(300):
        writer.write(payload(n))
        if n % 25 == 0:
            await flusher.flush()
    await flusher.flush()
    writer.retry()
    await flusher.flush()
    await writer.close()
    assert disk.failures > 0  # the disk did fill
    ids = await stored_ids(store)
    assert sorted(ids) == sorted(f"r{n}" for n in range(300)) and len(set(ids)) == 300
    assert len(spool.segments()) <= 2 and disk.used() < disk.quota


async def test_metrics_count_the_memory_backlog_and_every_write_failure(
        tmp_path: Path, monkeypatch, store) -> None:
    registry = CollectorRegistry()
    writer = SpoolWriter(own_dir(tmp_path), segment_bytes=1 << 20,
                         metrics=SpoolMetrics(registry))
    writer.start()
    flusher = Flusher(writer, tmp_path / "spool", lambda: store, None, batch_size=100,
                      interval_s=60, retry_max_s=1)
    monkeypatch.setattr(os, "write", refuse_everything)
    for n in range(5):
        writer.write(payload(n))
    writer.retry()
    writer.retry()
    assert sample(registry, "onyproxy_spool_write_errors_total", op="write") == 3
    assert sample(registry, "onyproxy_spool_memory_backlog") == 5
    assert sample(registry, "onyproxy_spool_memory_backlog_bytes") == sum(
        len(payload(n)) for n in range(5))
    await flusher.flush()
    assert sample(registry, "onyproxy_spool_memory_backlog") == 0
    monkeypatch.undo()
    await writer.close()


async def test_a_failed_sync_is_counted_and_its_records_still_reach_the_store(
        tmp_path: Path, monkeypatch, store) -> None:
    registry = CollectorRegistry()

    def sync_fails(fd: int) -> None:
        raise ENOSPC  # delayed allocation: the space runs out at writeback

    monkeypatch.setattr(os, "fdatasync", sync_fails)
    writer = SpoolWriter(own_dir(tmp_path), segment_bytes=1 << 20,
                         metrics=SpoolMetrics(registry))
    writer.start()
    flusher = Flusher(writer, tmp_path / "spool", lambda: store, None, batch_size=100,
                      interval_s=60, retry_max_s=1)
    for n in range(10):
        assert writer.write(payload(n))
    assert await flusher.flush() == 10
    await writer.close()
    assert sample(registry, "onyproxy_spool_write_errors_total", op="sync") >= 1
    assert sorted(await stored_ids(store)) == sorted(f"r{n}" for n in range(10))


class BrokenStore:
    async def insert_usage_events(self, events):
        raise RuntimeError("a bug, not an outage")


class CountingMetrics:
    def __init__(self) -> None:
        self.flush_errors = 0
        self.depth = 0

    def spool(self, depth: int) -> None:
        self.depth = depth

    def spool_flush_error(self) -> None:
        self.flush_errors += 1


async def test_every_failed_flush_round_is_counted_whatever_failed(tmp_path: Path) -> None:
    metrics = CountingMetrics()
    writer = SpoolWriter(own_dir(tmp_path), segment_bytes=1 << 20)
    writer.start()
    flusher = Flusher(writer, tmp_path / "spool", BrokenStore, metrics, batch_size=100,
                      interval_s=0.01, retry_max_s=0.05)
    writer.write(payload(1))
    flusher.start()
    try:
        async with asyncio.timeout(30):  # a hang guard, not a speed test
            while metrics.flush_errors < 2:
                await asyncio.sleep(0.01)
    finally:
        await flusher.stop(0.1)
        await writer.close()
    assert metrics.depth == 1
