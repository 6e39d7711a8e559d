"""A worker ends with its master: when the master dies, the worker drains and exits.

Without this, ``kill -9`` to the master leaves its workers serving under PID 1, and a restart
puts a second set of processes on the same port (SO_REUSEPORT lets them all in).

On Linux the kernel sends a signal to a process when its parent dies, once it asked with
``prctl(PR_SET_PDEATHSIG)``: no polling, so that is asked first. Everywhere else, and for a
master that died before the worker could ask, ``os.getppid()`` is polled: an orphan is
re-parented (to init or a subreaper), so a parent id that changed means the master is gone.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable

log = logging.getLogger("onyproxy.server")

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_S = 1.0


def ask_for_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Linux: have the kernel send ``signum`` to this process when its parent dies.

    Returns whether that was set up; elsewhere (or without a usable libc) it is not, and
    :func:`watch_parent` alone notices the master's death.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def orphaned(parent_pid: int) -> bool:
    """Whether the process that started this one (``parent_pid``) is no longer its parent."""
    return os.getppid() != parent_pid


async def watch_parent(parent_pid: int, on_orphaned: Callable[[], None],
                       poll_s: float = POLL_S) -> None:
    """Call ``on_orphaned`` once, as soon as the parent ``parent_pid`` is gone."""
    while not orphaned(parent_pid):
        await asyncio.sleep(poll_s)
    log.warning("the master (pid %d) is gone: worker pid %d drains and exits", parent_pid,
                os.getpid())
    on_orphaned()
