"""Graceful shutdown: stop accepting, let what runs finish for ``server.drain_s``, cut the rest.

aiohttp's own shutdown waits its ``shutdown_timeout`` for the handlers, then cancels their
requests' reads and waits as long again, so a stream could outlive the drain twice over, and
nobody would learn how many calls were cut. :class:`Drain` keeps the handlers in flight (an
outermost middleware) and which of them stream (their response was prepared while the handler
still ran); at the deadline it cancels those left and says how many it cut. A cancelled
handler still runs its ``finally`` (``on_complete``, metering, the access log), so the runner
is given some time after the deadline for that (:data:`CUT_GRACE_S`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

# How long handlers cut at the deadline get to finish their bookkeeping, and so how much longer
# than ``drain_s`` aiohttp's own shutdown timeout is set (it must not cut first).
CUT_GRACE_S = 10.0


@dataclass(frozen=True)
class Cut:
    """What a drain had to cut: requests still running at the deadline, and how many streamed."""

    requests: int = 0
    streams: int = 0


class Drain:
    """The requests in flight in one app, and the shutdown that waits for them."""

    def __init__(self) -> None:
        self._running: dict[asyncio.Task, bool] = {}  # handler task -> it is streaming

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def install(self, app: web.Application) -> None:
        """Track ``app``'s requests; call before the app starts (its middlewares freeze)."""
        running = self._running

        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            task = asyncio.current_task()
            assert task is not None
            running[task] = False
            try:
                return await handler(request)
            finally:
                running.pop(task, None)

        async def mark_stream(request: web.BaseRequest, response: web.StreamResponse) -> None:
            # A plain answer is prepared after its handler returned; only a stream is
            # prepared while the handler still runs.
            task = asyncio.current_task()
            if task in running:
                running[task] = True

        app.middlewares.insert(0, track)
        app.on_response_prepare.append(mark_stream)

    async def shutdown(self, runner: web.BaseRunner, drain_s: float) -> Cut:
        """Clean ``runner`` up (it stops accepting first); cut what runs after ``drain_s``."""
        cleanup = asyncio.ensure_future(runner.cleanup())
        done, _ = await asyncio.wait({cleanup}, timeout=drain_s)
        cut = Cut()
        if not done:
            left = [task for task in self._running if not task.done()]
            cut = Cut(requests=len(left), streams=sum(self._running[t] for t in left))
            for task in left:
                task.cancel()
        await cleanup
        return cut
