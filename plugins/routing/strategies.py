"""How a model's targets are ordered for one request; the forwarder tries them in that order.

Every strategy returns all the targets, so the ones after the first are the fallbacks:

- ``fallback``: config order.
- ``round_robin``: config order rotated one step per request, per model.
- ``weighted``: a random order drawn by ``weight`` (the first pick lands on each target in
  proportion to its weight; the rest follow by weight among those left).
- ``least_latency``: targets never tried first (so each gets measured), then by the
  exponentially weighted moving average of their upstream latency, then targets that were
  tried but never answered.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from onyproxy.config.model import TargetConfig
from onyproxy.exchange import Attempt


def target_key(provider: str, model: str) -> str:
    """The name a target goes by in routing state and metrics."""
    return f"{provider}/{model}"


def key_of(target: TargetConfig) -> str:
    return target_key(target.provider, target.model)


class RoundRobin:
    """Rotates each model's targets one step per request (state per process)."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def order(self, model: str, targets: Sequence[TargetConfig]) -> list[TargetConfig]:
        if not targets:
            return []
        turn = self._next.get(model, 0)
        self._next[model] = turn + 1
        start = turn % len(targets)
        return [*targets[start:], *targets[:start]]


def weighted_order(targets: Sequence[TargetConfig], rng: random.Random) -> list[TargetConfig]:
    """Targets drawn one by one without replacement, each draw in proportion to ``weight``."""
    left = list(targets)
    ordered: list[TargetConfig] = []
    while left:
        point = rng.uniform(0, sum(t.weight for t in left))
        index = _pick(left, point)
        ordered.append(left.pop(index))
    return ordered


def _pick(targets: list[TargetConfig], point: float) -> int:
    for index, target in enumerate(targets):
        point -= target.weight
        if point < 0:
            return index
    return len(targets) - 1  # point landed exactly on the upper end


class LatencyTracker:
    """Moving average of upstream latency per target (state per process).

    Only successful attempts are measured: a refused connection fails fast, and counting it
    would make a dead target look like the quickest one.
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha  # weight of the newest sample
        self._average: dict[str, float] = {}
        self._tried: set[str] = set()

    def observe(self, key: str, attempt: Attempt) -> None:
        self._tried.add(key)
        if attempt.error is not None:
            return
        previous = self._average.get(key)
        sample = attempt.duration_s
        self._average[key] = sample if previous is None else \
            self.alpha * sample + (1 - self.alpha) * previous

    def average(self, key: str) -> float | None:
        return self._average.get(key)

    def order(self, targets: Sequence[TargetConfig]) -> list[TargetConfig]:
        def rank(item: tuple[int, TargetConfig]) -> tuple[int, float, int]:
            index, target = item
            key = key_of(target)
            if key not in self._tried:
                return (0, 0.0, index)
            average = self._average.get(key)
            return (1, average, index) if average is not None else (2, 0.0, index)

        return [target for _, target in sorted(enumerate(targets), key=rank)]
