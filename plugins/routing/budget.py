"""A retry budget per upstream target, after Envoy's: retries are a share of recent calls.

Retries help when a target fails now and then; when it is down they only multiply the load on
it (three tries per call with ``retries: 2``). The budget lets a target be retried at most
``ratio`` times per call it received in the last ``window_s`` seconds, and always
``min_retries`` times in that window, so that a lone call still gets its retry. A retry is
counted when it is granted, so concurrent callers cannot all take the last one.

Calls and retries are counted in ten buckets per window: the window slides in steps of a
tenth of ``window_s``, and a target's state stays a few numbers whatever the traffic.
State lives in this process only, like the circuit breaker's.
"""

from __future__ import annotations

import math
from collections import deque

from plugins.routing.circuit import Clock

BUCKETS = 10  # per window


class SlidingCount:
    """Events in the last ``window_s`` seconds, counted in buckets of ``window_s / 10``."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.bucket_s = window_s / BUCKETS
        self._buckets: deque[list[int]] = deque()  # [bucket number, events], oldest first
        self._total = 0

    def add(self, now: float) -> None:
        self._expire(now)
        number = math.floor(now / self.bucket_s)
        if self._buckets and self._buckets[-1][0] == number:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([number, 1])
        self._total += 1

    def total(self, now: float) -> int:
        self._expire(now)
        return self._total

    def _expire(self, now: float) -> None:
        # A bucket goes once all of it is older than the window.
        oldest = math.floor((now - self.window_s) / self.bucket_s)
        while self._buckets and self._buckets[0][0] < oldest:
            self._total -= self._buckets.popleft()[1]


class RetryBudget:
    """Calls and granted retries per target key (``"provider/model"``)."""

    def __init__(self, ratio: float, window_s: float, min_retries: int, clock: Clock) -> None:
        self.ratio = ratio
        self.window_s = window_s
        self.min_retries = min_retries
        self.clock = clock
        self._calls: dict[str, SlidingCount] = {}
        self._retries: dict[str, SlidingCount] = {}

    def record_call(self, key: str) -> None:
        """A call reached this target (its first try there)."""
        self._count(self._calls, key).add(self.clock())

    def try_retry(self, key: str) -> bool:
        """Grant one retry at this target if the budget has room, and count it."""
        now = self.clock()
        calls = self._count(self._calls, key).total(now)
        retries = self._count(self._retries, key)
        if retries.total(now) >= max(self.min_retries, self.ratio * calls):
            return False
        retries.add(now)
        return True

    def _count(self, counts: dict[str, SlidingCount], key: str) -> SlidingCount:
        count = counts.get(key)
        if count is None:
            count = counts[key] = SlidingCount(self.window_s)
        return count
