"""One load per key at a time, however many requests wait for it.

The auth plugin's key lookups and the metering plugin's account budgets both read the store on a
cache miss; a burst of requests for the same key must cause one read, not one each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    """Callers asking for a key that is already loading await that load instead of starting
    another. The load is shielded: a caller that is cancelled (its client left) does not
    cancel it for the others."""

    def __init__(self) -> None:
        self._pending: dict[K, asyncio.Future[T]] = {}

    async def run(self, key: K, load: Callable[[], Awaitable[T]]) -> T:
        """The result of ``load()`` for ``key``, started now or already on its way."""
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(load())
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(pending)

    def _finished(self, key: K, done: asyncio.Future[T]) -> None:
        self._pending.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved here: every waiter may have gone
