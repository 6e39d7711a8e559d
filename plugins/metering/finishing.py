"""The exchanges whose ``on_complete`` is running, so that stopping the plugin waits for them.

At shutdown the server cuts the exchanges still running (streams longer than its drain); each
one's ``on_complete`` then runs in a task of its own (shielded from the cut) and still needs
the spool writer and, for a cut stream, the tokenizer: stopping waits for those records first.
A record that arrives after the writer closed is counted as lost and logged.
"""

from __future__ import annotations

import asyncio


class Finishing:
    """How many ``on_complete`` calls are running, and a way to wait until none is."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count <= 0:
            self.count = 0
            self._idle.set()

    async def wait(self, timeout_s: float) -> bool:
        """True once none is open; False when ``timeout_s`` passed first."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
