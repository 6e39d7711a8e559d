"""Usage spikes: a key's requests or tokens per minute far above its own usual rate.

Each key keeps, per measure (requests, tokens), a count for the current minute, the count of
the minute before, and a baseline: an exponentially weighted moving average of its completed
*active* minutes (span ``baseline_minutes``, so alpha = 2 / (span + 1)). Minutes without traffic
are skipped rather than averaged in as zeros: a key used every weekday morning keeps its
morning rate as the norm through the night, and a key reinstated after a suspension comes
back to the baseline it had, not to zero.

The rate now is the sliding estimate ``current + previous x (1 - elapsed part of this
minute)``, so a burst that straddles a minute boundary is not split in two. A spike is a rate
above ``max(floor, factor x baseline)``; the floor keeps new and idle keys (baseline 0 or
none) from tripping on their first requests. The average starts at zero, so during a key's
first ``baseline_minutes`` of traffic the floor weighs most: a new key is judged by the floor
until it has a history, and its first minute cannot set its norm.

A minute is folded into the baseline capped at that threshold, so a spike that goes on
raises the norm only step by step (about 30% a minute with factor 10): an attack is reported
at once, while a key whose traffic really grew is accepted as normal within minutes.

Per request: a few arithmetic operations and one move to the end of an ordered dict, O(1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from plugins.security.config import SpikeConfig
from plugins.security.findings import Finding

MINUTE_S = 60.0


@dataclass(slots=True)
class Meter:
    """Per-minute counts of one measure of one key, and its baseline."""

    minute: int = -1  # index of the current minute (seconds // 60); -1 before any traffic
    current: float = 0.0
    previous: float = 0.0  # the minute just before ``minute``; 0 when that one was idle
    baseline: float | None = None  # None until a first minute completed

    def advance(self, minute: int, alpha: float, cap: Callable[[float | None], float]) -> None:
        """Move to ``minute``, folding the completed minute into the baseline."""
        if minute <= self.minute:
            return
        if self.minute >= 0:
            done = min(self.current, cap(self.baseline))
            # Starting from zero, not from the first minute: a key's first minute (perhaps the
            # attack itself) must not set its norm at once.
            before = self.baseline or 0.0
            self.baseline = before + alpha * (done - before)
        self.previous = self.current if minute == self.minute + 1 else 0.0
        self.current = 0.0
        self.minute = minute

    def per_minute(self, now: float) -> float:
        """The sliding estimate of the last 60 seconds."""
        elapsed = now / MINUTE_S - self.minute
        return self.current + self.previous * max(0.0, 1.0 - elapsed)


@dataclass(slots=True)
class KeyUsage:
    requests: Meter = field(default_factory=Meter)
    tokens: Meter = field(default_factory=Meter)


class SpikeDetector:
    """Per-key meters, bounded to the ``max_keys`` most recently used keys."""

    def __init__(self, config: SpikeConfig, clock: Callable[[], float],
                 max_keys: int = 100_000) -> None:
        self.config = config
        self._clock = clock
        self._max = max_keys
        self._alpha = 2.0 / (config.baseline_minutes + 1)
        self._floors = {"requests": float(config.min_requests_per_minute),
                        "tokens": float(config.min_tokens_per_minute)}
        self._keys: OrderedDict[str, KeyUsage] = OrderedDict()

    def request(self, key_id: str) -> Finding | None:
        """Count one request of ``key_id``; a finding when that makes a spike."""
        return self._add(key_id, "requests", 1.0)

    def tokens(self, key_id: str, count: int) -> Finding | None:
        """Count the tokens of a finished request of ``key_id``."""
        if count <= 0:
            return None
        return self._add(key_id, "tokens", float(count))

    def baseline(self, key_id: str, measure: str = "requests") -> float | None:
        """The key's baseline per minute (for tests and operators' curiosity)."""
        usage = self._keys.get(key_id)
        return None if usage is None else getattr(usage, measure).baseline

    def _add(self, key_id: str, measure: str, amount: float) -> Finding | None:
        now = self._clock()
        meter: Meter = getattr(self._usage(key_id), measure)
        floor = self._floors[measure]

        def threshold(baseline: float | None) -> float:
            return floor if baseline is None else max(floor, self.config.factor * baseline)

        meter.advance(int(now // MINUTE_S), self._alpha, threshold)
        meter.current += amount
        rate = meter.per_minute(now)
        limit = threshold(meter.baseline)
        if rate <= limit:
            return None
        return self._finding(key_id, measure, rate, meter.baseline, limit)

    def _usage(self, key_id: str) -> KeyUsage:
        usage = self._keys.get(key_id)
        if usage is None:
            usage = self._keys[key_id] = KeyUsage()
            if len(self._keys) > self._max:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key_id)
        return usage

    def _finding(self, key_id: str, measure: str, rate: float, baseline: float | None,
                 limit: float) -> Finding:
        floor = self._floors[measure]
        norm = "no baseline yet" if baseline is None else \
            f"{self.config.factor:g} x baseline {baseline:.1f}"
        return Finding(
            kind="usage_spike", key_id=key_id,
            reason=f"{measure} per minute {rate:.0f} above {limit:.0f} ({norm}, floor "
                   f"{floor:.0f})",
            evidence={"measure": measure, "per_minute": round(rate, 1),
                      "baseline_per_minute": None if baseline is None else round(baseline, 2),
                      "factor": self.config.factor, "floor": floor,
                      "threshold": round(limit, 1)})
