"""``last_used_at`` of keys, written in the background in batches, never on a request's path.

A request only notes the time in a dict (the latest use per key); a task writes the batch every
``interval_s``. What could not be written (store down) is kept and tried again with the next
batch; a later use of the same key simply replaces the older time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from onyproxy.storage import StorageError, to_utc

log = logging.getLogger("onyproxy.auth")


class LastUsed:
    """Uses of keys waiting to be written, and the task that writes them."""

    def __init__(self, store: Callable[[], Any], interval_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store  # called at flush time: the gateway's store may be replaced
        self.interval_s = interval_s
        self._clock = clock
        self._pending: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, key_id: str) -> None:
        """Remember that ``key_id`` was used now; O(1), no I/O."""
        self._pending[key_id] = self._clock()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="onyproxy-auth-last-used")

    async def stop(self) -> None:
        """Stop the task and write what is left (one try)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()

    async def flush(self) -> int:
        """Write the pending uses; return how many were written."""
        batch, self._pending = self._pending, {}
        written = 0
        store = self._store()
        items = list(batch.items())
        for index, (key_id, at) in enumerate(items):
            try:
                await store.touch_key(key_id, to_utc(datetime.fromtimestamp(at, UTC)))
                written += 1
            except StorageError:
                # The store is down: keep the rest for the next batch rather than wait out a
                # timeout per key.
                for later_id, later_at in items[index:]:
                    self._keep(later_id, later_at)
                break
            except Exception as exc:  # a bug must not end the task; the use is not worth a retry
                log.error("cannot record last use of key %s: %s", key_id, type(exc).__name__)
        return written

    def _keep(self, key_id: str, at: float) -> None:
        self._pending[key_id] = max(at, self._pending.get(key_id, at))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()
