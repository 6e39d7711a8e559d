"""A full spool disk under load (real ``onyproxy serve`` processes, the spool on a 256 KB
tmpfs): the gateway keeps answering, the records the disk refuses reach the store from
memory, the write failures show in /metrics, a restart on the still-full disk works, and once
the disk is freed and the gateway restarted every answered request is in the store exactly
once. A spool that cannot be created stops the start with a message naming it."""

from __future__ import annotations

import asyncio
import errno
import re
import shutil
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from serve_process import GatewayProcess
from test_metering_kill import complete_call, gateway_config, stored_ids

DISK_SIZE = "256k"


def mount_small_disk(path: Path) -> None:
    path.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small tmpfs for the spool")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs",
                           str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")


def fill(disk: Path) -> Path:
    """Take every byte left on ``disk`` with a file of its own."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (4096, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def call_many(gateway: GatewayProcess, first: int, count: int) -> set[str]:
    """``count`` chat calls, 8 at a time (every third one streamed); each must be answered
    completely. Returns their request ids."""
    url = gateway.url("/v1/chat/completions")
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda n: complete_call(url, n), range(first, first + count)))
    assert None not in ids, gateway.log()[-3000:]
    return set(ids)


def metric(gateway: GatewayProcess, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(gateway.url("/metrics"), timeout=10) as resp:
        text = resp.read().decode()
    found = re.search(rf"^{re.escape(name + labels)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.slow
async def test_a_full_spool_disk_loses_nothing_and_doubles_nothing(tmp_path: Path):
    disk = tmp_path / "disk"
    mount_small_disk(disk)
    url = f"sqlite:///{tmp_path}/onyproxy.db"
    config = gateway_config(url, 1)
    config["pipeline"][1]["spool_dir"] = str(disk / "spool")
    runs = [tmp_path / name for name in ("first", "second", "third")]
    for run in runs:
        run.mkdir()
    gateways: list[GatewayProcess] = []
    try:
        first = GatewayProcess(config, runs[0])
        gateways.append(first)
        await asyncio.to_thread(first.wait_ready)
        answered = await asyncio.to_thread(call_many, first, 0, 300)
        filler = fill(disk)
        answered |= await asyncio.to_thread(call_many, first, 300, 600)
        await stored_ids(url, answered)  # from memory straight to the store
        assert metric(first, "onyproxy_spool_write_errors_total", '{op="write"}') > 0
        first.process.kill()  # kill -9 with the disk full: its spool folder stays behind
        first.process.wait()

        second = GatewayProcess(config, runs[1])  # the disk is still full
        gateways.append(second)
        await asyncio.to_thread(second.wait_ready)
        assert "cannot listen" not in second.log()
        filler.unlink()  # space returns
        answered |= await asyncio.to_thread(call_many, second, 900, 300)
        assert second.stop() == 0
        assert "lost" not in first.log() + second.log()

        third = GatewayProcess(config, runs[2])
        gateways.append(third)
        await asyncio.to_thread(third.wait_ready)
        ids = await stored_ids(url, answered)
        assert third.stop() == 0
    finally:
        for gateway in gateways:
            gateway.stop()
        subprocess.run(["umount", "-l", str(disk)], check=False)
    assert len(ids) == len(set(ids))  # never twice
    assert answered <= set(ids)  # every answered request is recorded
    assert len(answered) == 1200


@pytest.mark.slow
def test_a_spool_that_cannot_be_created_stops_the_start_naming_it(tmp_path: Path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool's parent folder should be")
    config = gateway_config(f"sqlite:///{tmp_path}/onyproxy.db", 1)
    config["pipeline"][1]["spool_dir"] = str(blocker / "spool")
    gateway = GatewayProcess(config, tmp_path)
    try:
        assert gateway.process.wait(timeout=60) != 0
    finally:
        gateway.stop()
    log = gateway.log()
    assert f"cannot create the usage spool in {blocker / 'spool'}" in log
    assert "cannot listen" not in log
