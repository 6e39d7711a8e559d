"""A circuit breaker per upstream target (provider + model).

``failures`` retryable failures (5xx, 429, timeouts, connection errors) within ``window_s``
open a target's circuit: it is skipped for ``cooldown_s``. Then it is half-open: one request
may try it (the trial); a success closes the circuit, a failure opens it for another cool-down.
Any answer that shows the target is up (a success, or a client's own 4xx) closes it.

State lives in this process only: with ``server.workers: N`` or several gateway machines, each
process learns about a failing target on its own. That keeps the hot path free of I/O and is
safe, since a wrongly closed circuit costs only the failures it would have spared.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from onyproxy.exchange import Attempt

State = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]


def is_failure(attempt: Attempt) -> bool:
    """Whether an attempt counts against its target: the target, not the request, failed."""
    if attempt.error is None:
        return False
    status = attempt.status
    return status is None or status == 429 or status >= 500


@dataclass(slots=True)
class _Circuit:
    failures: deque[float] = field(default_factory=deque)  # times of recent failures
    opened_at: float | None = None
    trial_at: float | None = None  # when the half-open trial was handed out


class CircuitBreaker:
    """Circuit state per target key (``"provider/model"``), for one gateway process.

    ``admit`` is asked once per target when a request is routed; ``record`` learns from every
    attempt as it ends. A half-open trial that never reports back (the request was cancelled,
    or an earlier target answered first) is given back with ``release``; failing that, it
    expires after ``cooldown_s`` so a lost trial cannot keep a target out for good.
    """

    def __init__(self, failures: int, window_s: float, cooldown_s: float,
                 clock: Clock = time.monotonic) -> None:
        self.failures = failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def state(self, key: str) -> State:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.opened_at is None:
            return "closed"
        if self.clock() < circuit.opened_at + self.cooldown_s:
            return "open"
        return "half_open"

    def states(self) -> dict[str, State]:
        """Every target seen so far and its state, e.g. for a metrics gauge."""
        return {key: self.state(key) for key in self._circuits}

    def admit(self, key: str) -> bool:
        """May a request try this target now? A half-open target admits one trial at a time."""
        state = self.state(key)
        if state == "closed":
            return True
        if state == "open":
            return False
        circuit = self._circuits[key]
        now = self.clock()
        if circuit.trial_at is not None and now < circuit.trial_at + self.cooldown_s:
            return False
        circuit.trial_at = now
        return True

    def release(self, key: str) -> None:
        """Give back a trial that was admitted but never attempted."""
        circuit = self._circuits.get(key)
        if circuit is not None:
            circuit.trial_at = None

    def available_at(self, key: str) -> float:
        """When this target will next be admitted (now or in the past when it would be)."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.opened_at is None:
            return float("-inf")
        ready = circuit.opened_at + self.cooldown_s
        if circuit.trial_at is not None:
            ready = max(ready, circuit.trial_at + self.cooldown_s)
        return ready

    def record(self, key: str, attempt: Attempt) -> None:
        """Learn from one finished attempt at ``key``."""
        if is_failure(attempt):
            self.record_failure(key)
        else:
            self.record_success(key)

    def record_success(self, key: str) -> None:
        # Failures in the window stay counted: N failures within it open the circuit even
        # when successes come in between (a flaky target is a failing one).
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.opened_at = circuit.trial_at = None

    def record_failure(self, key: str) -> None:
        circuit = self._circuits.setdefault(key, _Circuit())
        now = self.clock()
        if circuit.opened_at is not None:
            # A failed trial (or a forced try while open): another full cool-down.
            circuit.opened_at, circuit.trial_at = now, None
            return
        circuit.failures.append(now)
        while circuit.failures and circuit.failures[0] <= now - self.window_s:
            circuit.failures.popleft()
        if len(circuit.failures) >= self.failures:
            circuit.opened_at = now
            circuit.failures.clear()
