"""Routing: retry policy, the order in which a model's targets are tried, circuit breaking.

``on_request`` orders ``ex.targets`` by the model's ``strategy`` (see :mod:`.strategies`) and
drops targets whose circuit is open (see :mod:`.circuit`); the forwarder then tries them in that
order with this plugin's retry policy. Every attempt is reported back through
``ex.on_attempt`` as it ends, so the breaker and the latency averages learn while the request
is still running. All of this state is per process (see the module docs of the parts).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from onyproxy.config.model import TargetConfig
from onyproxy.exchange import Attempt, Exchange, RoutePolicy
from onyproxy.pipeline import Plugin
from plugins.routing.circuit import CircuitBreaker, Clock, State
from plugins.routing.strategies import (
    LatencyTracker,
    RoundRobin,
    key_of,
    target_key,
    weighted_order,
)


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else f"expected zero or more, got {value}"


def _positive(value: float) -> str | None:
    return None if value > 0 else f"expected a positive number, got {value}"


def _fraction(value: float) -> str | None:
    return None if 0 < value <= 1 else f"expected a number above 0 and at most 1, got {value}"


@dataclass(frozen=True)
class CircuitConfig:
    """When a target's circuit opens, and for how long it stays open."""

    failures: int = field(default=5, metadata={
        "check": _positive, "doc": "retryable failures (5xx/429/timeout/connection) that open it"})
    window_s: float = field(default=30.0, metadata={
        "check": _positive, "doc": "the window those failures are counted in"})
    cooldown_s: float = field(default=30.0, metadata={
        "check": _positive, "doc": "how long an open target is skipped before a trial request"})


@dataclass(frozen=True)
class RoutingConfig:
    """Options of the ``routing`` plugin."""

    retries: int = field(default=2, metadata={
        "check": _non_negative, "doc": "extra tries per target on 429/5xx/timeouts"})
    timeout_s: float = field(default=600.0, metadata={
        "check": _positive, "doc": "wait for an upstream answer (targets may override)"})
    backoff_s: float = field(default=0.25, metadata={
        "check": _positive, "doc": "first retry delay; doubles per retry, with jitter"})
    max_backoff_s: float = field(default=8.0, metadata={
        "check": _positive, "doc": "longest wait; a longer retry-after skips the target"})
    latency_alpha: float = field(default=0.3, metadata={
        "check": _fraction, "doc": "least_latency: weight of the newest sample in the average"})
    circuit: CircuitConfig = field(default_factory=CircuitConfig, metadata={
        "doc": "circuit breaker per target (provider + model)"})


@dataclass(slots=True)
class RouteState:
    """What this plugin keeps on ``ex.state["routing"]``."""

    trials: set[str] = field(default_factory=set)  # half-open trials this request holds
    forced: str | None = None  # every circuit was open; this target is tried anyway


class RoutingPlugin(Plugin):
    """Orders targets per strategy, skips open circuits, sets the retry policy.

    ``rng`` and ``clock`` can be injected (tests pass a seeded ``random.Random`` and a manual
    clock); the defaults are a fresh ``Random`` and ``time.monotonic``.
    """

    name = "routing"
    Config = RoutingConfig

    def __init__(self, config: RoutingConfig, gateway: Any, *,
                 rng: random.Random | None = None, clock: Clock | None = None) -> None:
        super().__init__(config, gateway)
        self.policy = RoutePolicy(retries=config.retries, timeout_s=config.timeout_s,
                                  backoff_s=config.backoff_s, max_backoff_s=config.max_backoff_s)
        self.rng = rng or random.Random()
        circuit = config.circuit
        self.breaker = CircuitBreaker(circuit.failures, circuit.window_s, circuit.cooldown_s,
                                      clock or time.monotonic)
        self.latency = LatencyTracker(config.latency_alpha)
        self.round_robin = RoundRobin()

    async def on_request(self, ex: Exchange) -> None:
        ex.policy = self.policy
        state = RouteState()
        ex.state[self.name] = state
        ex.targets = self._admit(self.order(ex.model, ex.targets), state)
        ex.on_attempt.append(lambda attempt: self._observe(state, attempt))

    async def on_complete(self, ex: Exchange) -> None:
        state = ex.state.get(self.name)
        if not isinstance(state, RouteState):
            return
        for key in state.trials:  # admitted as a trial but never tried
            self.breaker.release(key)
        if ex.error is not None and ex.error.code == "upstream_stream_error" and ex.provider:
            # The stream broke after the attempt counted as a success: the target failed.
            self.breaker.record_failure(target_key(ex.provider, ex.provider_model or ""))

    def order(self, model: str, targets: list[TargetConfig]) -> list[TargetConfig]:
        """``targets`` in the order the model's strategy wants them tried."""
        config = self.gateway.config.models.get(model)
        strategy = config.strategy if config is not None else "fallback"
        if strategy == "round_robin":
            return self.round_robin.order(model, targets)
        if strategy == "weighted":
            return weighted_order(targets, self.rng)
        if strategy == "least_latency":
            return self.latency.order(targets)
        return list(targets)

    def circuit_states(self) -> dict[str, State]:
        """``{"provider/model": "closed" | "open" | "half_open"}`` for every target seen."""
        return self.breaker.states()

    def _admit(self, ordered: list[TargetConfig], state: RouteState) -> list[TargetConfig]:
        """The targets whose circuit lets this request through, in order.

        When every circuit is open, the target whose cool-down ends soonest is tried anyway:
        failing without asking anyone would turn a partial outage into a full one, and one
        forced try per request is a small load on a target that may have recovered.
        """
        admitted = []
        for target in ordered:
            key = key_of(target)
            half_open = self.breaker.state(key) == "half_open"
            if self.breaker.admit(key):
                admitted.append(target)
                if half_open:
                    state.trials.add(key)
        if admitted or not ordered:
            return admitted
        soonest = min(ordered, key=lambda t: self.breaker.available_at(key_of(t)))
        state.forced = key_of(soonest)
        return [soonest]

    def _observe(self, state: RouteState, attempt: Attempt) -> None:
        key = target_key(attempt.provider, attempt.model)
        state.trials.discard(key)
        self.breaker.record(key, attempt)
        self.latency.observe(key, attempt)
