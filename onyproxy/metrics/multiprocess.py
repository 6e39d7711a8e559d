"""Correct totals with ``server.workers > 1``: prometheus-client's multiprocess mode.

Each worker process writes its metric values to memory-mapped files named after its pid in
one directory (``PROMETHEUS_MULTIPROC_DIR``); whichever worker answers ``GET /metrics`` merges
all the files, so counters and histograms are sums over every worker that ever ran in this
server run, and gauges follow their ``multiprocess_mode``.

The supervisor (:func:`onyproxy.server.supervise`) owns the directory's lifetime:

- :func:`prepare` before the first worker is forked: a fresh directory per run (or, when the
  operator set ``PROMETHEUS_MULTIPROC_DIR``, that one emptied of old files), the variable set
  so every worker inherits it, and the multiprocess value class switched on;
- :func:`mark_dead` when a worker exits, so its "live" gauges (circuit state, spool depth)
  stop counting while its counters keep contributing to the totals;
- :func:`remove` at shutdown, for a directory :func:`prepare` created.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile

from prometheus_client import values
from prometheus_client.multiprocess import mark_process_dead

ENV = "PROMETHEUS_MULTIPROC_DIR"
_PREFIX = "onyproxy-metrics-"


def prepare() -> tuple[str, bool]:
    """Set up the directory for this run; ``(path, created)``: ``created`` means remove it later.

    Must run before any metric exists in this process (the supervisor creates none; workers
    create theirs with the app, after the fork).
    """
    path = os.environ.get(ENV)
    created = not path
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            # Files of an earlier run would be merged into this run's totals.
            os.remove(stale)
    else:
        _remove_orphans()
        path = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
        os.environ[ENV] = path
    _use_multiprocess_values()
    return path, created


def active() -> str | None:
    """The directory when this process records in multiprocess mode, else ``None``."""
    path = os.environ.get(ENV)
    if path and getattr(values.ValueClass, "_multiprocess", False):
        return path
    return None


def mark_dead(pid: int | None) -> None:
    """A worker exited: drop its live gauges (its counters stay part of the totals)."""
    path = os.environ.get(ENV)
    if pid is not None and path and os.path.isdir(path):
        mark_process_dead(pid, path)


def remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _use_multiprocess_values() -> None:
    """Make metrics created from now on write to the per-pid files.

    prometheus-client picks its value class when it is first imported, reading the variable
    then. The supervisor imported it (through the app module) before it knew it would fork, so
    the choice is redone here. Metrics look ``values.ValueClass`` up when they are created
    (the library keeps that import style on purpose, for its own tests), and no metric exists
    yet in the supervisor, so nothing was created with the old class. After ``fork`` each
    worker's first metric notices the new pid and opens its own files.
    """
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


def _remove_orphans() -> None:
    """Directories of earlier runs whose supervisor died without cleaning up (kill -9)."""
    pattern = os.path.join(tempfile.gettempdir(), f"{_PREFIX}*")
    for path in glob.glob(pattern):
        pid = os.path.basename(path)[len(_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return True
