"""Child processes of the bench: start (optionally pinned with ``taskset``), wait, measure, stop."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PYTHON = sys.executable


def pinned(cmd: list[str], cores: str | None) -> list[str]:
    """``cmd`` run under ``taskset -c cores`` (taskset execs it: the pid stays the same)."""
    if cores is None or shutil.which("taskset") is None:
        return cmd
    return ["taskset", "-c", cores, *cmd]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Child:
    """One long-running child process with its output in a log file."""

    def __init__(self, name: str, cmd: list[str], log: Path, cores: str | None = None,
                 env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self.name = name
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(pinned(cmd, cores), stdout=self._out,
                                     stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, cwd=cwd,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def wait_port_line(self, timeout: float = 20.0) -> int:
        """The port a bench server printed as ``port=<P>``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith("port="):
                    return int(line[5:])
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start:\n{self.tail()}")

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {url}:\n{self.tail()}")

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                               f"{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def rss_mb(self) -> float:
        """Resident memory of the process and its children (workers), in MB."""
        return round(sum(rss_kb(pid) for pid in process_tree(self.pid)) / 1024, 1)

    def worker_rss_mb(self) -> list[float]:
        """RSS of each process in the tree (the supervisor first), in MB."""
        return [round(rss_kb(pid) / 1024, 1) for pid in process_tree(self.pid)]

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far by the process and its children (workers)."""
        return sum(cpu_ticks(pid) for pid in process_tree(self.pid)) / CLOCK_TICKS

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def rss_kb(pid: int) -> int:
    """``VmRSS`` from ``/proc/<pid>/status`` (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` from ``/proc/<pid>/stat``, in clock ticks (0 when gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, found through ``/proc/*/stat`` parent ids."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo.extend(sorted(parents.get(current, [])))
    return tree


def run_json(cmd: list[str], cores: str | None, timeout: float) -> str:
    """Run a short-lived child to completion and return its last stdout line."""
    done = subprocess.run(pinned(cmd, cores), capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed ({done.returncode}):\n"
                           f"{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]
