"""Counting wrong keys per client IP: each failure answers a little later, then the IP is
blocked for a while.

Per process: with ``server.workers: N`` an address may fail up to N times ``max`` before every
worker has blocked it. With 240-bit keys guessing is hopeless anyway; the block sheds load and
makes misbehaving clients visible. The table is bounded: addresses whose failures have all left
the window are dropped first, then the least recently seen.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from plugins.auth.config import FailuresConfig

MAX_DELAY_S = 2.0
MAX_ADDRESSES = 100_000


@dataclass(slots=True)
class _Address:
    times: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class FailureTracker:
    """Failures and blocks by client address."""

    def __init__(self, config: FailuresConfig, clock: Callable[[], float],
                 max_addresses: int = MAX_ADDRESSES) -> None:
        self.config = config
        self._clock = clock
        self._max = max_addresses
        self._addresses: OrderedDict[str, _Address] = OrderedDict()

    def blocked_for(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it is not blocked."""
        state = self._addresses.get(address)
        if state is None or not state.blocked_until:
            return 0.0
        return max(0.0, state.blocked_until - self._clock())

    def fail(self, address: str) -> tuple[float, bool]:
        """Count a wrong key: (how long to delay the answer, whether this blocked the address)."""
        now = self._clock()
        state = self._addresses.get(address)
        if state is None:
            state = self._addresses[address] = _Address()
            self._prune(now)
        self._addresses.move_to_end(address)
        times = state.times
        while times and now - times[0] >= self.config.window_s:
            times.popleft()
        times.append(now)
        if len(times) >= self.config.max:
            state.blocked_until = now + self.config.block_s
            times.clear()
            return 0.0, True
        return min(self.config.delay_s * (len(times) - 1), MAX_DELAY_S), False

    def _prune(self, now: float) -> None:
        if len(self._addresses) <= self._max:
            return
        window = self.config.window_s
        idle = [address for address, state in self._addresses.items()
                if state.blocked_until <= now and (not state.times
                                                   or now - state.times[-1] >= window)]
        for address in idle:
            del self._addresses[address]
        while len(self._addresses) > self._max:
            self._addresses.popitem(last=False)

    def __len__(self) -> int:
        return len(self._addresses)
