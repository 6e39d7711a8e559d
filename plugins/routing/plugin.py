"""Routing: retry policy, the order in which a model's targets are tried, circuit breaking.

``on_request`` orders ``ex.targets`` by the model's ``strategy`` (see :mod:`.strategies`) and
drops targets whose circuit is open (see :mod:`.circuit`); when every target is open, the call
is shed: answered 503 at once, with ``retry-after`` until the next half-open trial. The
forwarder then tries the targets in that order with this plugin's retry policy, asking
``may_retry`` before each retry: the target's circuit must be closed and its retry budget (see
:mod:`.budget`) have room. Every attempt is reported back through ``ex.on_attempt`` as it ends,
so the breaker, the budget and the latency averages learn while the request is still running.
All of this state is per process (see the module docs of the parts).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from onyproxy.config.model import TargetConfig
from onyproxy.errors import GatewayError
from onyproxy.exchange import Attempt, Exchange, RoutePolicy
from onyproxy.pipeline import Plugin
from plugins.routing.budget import RetryBudget
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


def _share(value: float) -> str | None:
    return None if 0 <= value <= 1 else f"expected a number from 0 to 1, got {value}"


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
class RetryBudgetConfig:
    """How many retries a target may get: a share of its recent calls (Envoy's retry budget)."""

    ratio: float = field(default=0.2, metadata={
        "check": _share, "doc": "retries allowed per call a target received in the window"})
    window_s: float = field(default=10.0, metadata={
        "check": _positive, "doc": "the window calls and retries are counted in"})
    min_retries: int = field(default=3, metadata={
        "check": _non_negative, "doc": "retries per target always allowed in the window"})


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
    retry_budget: RetryBudgetConfig = field(default_factory=RetryBudgetConfig, metadata={
        "doc": "cap on retries per target, so an outage does not multiply its load"})


@dataclass(slots=True)
class RouteState:
    """What this plugin keeps on ``ex.state["routing"]``."""

    trials: set[str] = field(default_factory=set)  # half-open trials this request holds
    tried: set[str] = field(default_factory=set)  # targets this request has called


class RoutingPlugin(Plugin):
    """Orders targets per strategy, skips open circuits, sheds calls, budgets retries.

    ``rng`` and ``clock`` can be injected (tests pass a seeded ``random.Random`` and a manual
    clock); the defaults are a fresh ``Random`` and ``time.monotonic``.
    """

    name = "routing"
    Config = RoutingConfig

    def __init__(self, config: RoutingConfig, gateway: Any, *,
                 rng: random.Random | None = None, clock: Clock | None = None) -> None:
        super().__init__(config, gateway)
        self.policy = RoutePolicy(retries=config.retries, timeout_s=config.timeout_s,
                                  backoff_s=config.backoff_s, max_backoff_s=config.max_backoff_s,
                                  may_retry=self.may_retry)
        self.rng = rng or random.Random()
        clock = clock or time.monotonic
        circuit, budget = config.circuit, config.retry_budget
        self.breaker = CircuitBreaker(circuit.failures, circuit.window_s, circuit.cooldown_s,
                                      clock)
        self.budget = RetryBudget(budget.ratio, budget.window_s, budget.min_retries, clock)
        self.latency = LatencyTracker(config.latency_alpha)
        self.round_robin = RoundRobin()

    async def on_request(self, ex: Exchange) -> None:
        ex.policy = self.policy
        state = RouteState()
        ex.state[self.name] = state
        ex.targets = self._admit(ex.model, self.order(ex.model, ex.targets), state)
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

    def may_retry(self, target: TargetConfig) -> bool:
        """Whether the forwarder may try ``target`` again (``RoutePolicy.may_retry``)."""
        key = key_of(target)
        if self.breaker.state(key) != "closed":
            reason = "circuit_open"  # a retry would be a second trial, or a forced try
        elif not self.budget.try_retry(key):
            reason = "budget"
        else:
            return True
        metrics = getattr(self.gateway, "metrics", None)
        if metrics is not None:
            metrics.retry_refused(target.provider, reason)
        return False

    def _admit(self, model: str, ordered: list[TargetConfig],
               state: RouteState) -> list[TargetConfig]:
        """The targets whose circuit lets this request through, in order.

        When every circuit is open the call is shed: forcing it through would load a failing
        upstream with every caller's tries, while a half-open trial per target and cool-down
        already finds out when it recovers.
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
        raise self._shed(model, ordered)

    def _shed(self, model: str, targets: list[TargetConfig]) -> GatewayError:
        ready = min(self.breaker.available_at(key_of(t)) for t in targets)
        wait_s = max(1, math.ceil(ready - self.breaker.clock()))
        metrics = getattr(self.gateway, "metrics", None)
        if metrics is not None:
            metrics.circuit_shed(model)
        return GatewayError(
            503, "api_error", f"Every provider of the model '{model}' is failing; the gateway "
            f"is holding calls back. Retry in {wait_s} s.", code="circuit_open",
            headers={"retry-after": str(wait_s)})

    def _observe(self, state: RouteState, attempt: Attempt) -> None:
        key = target_key(attempt.provider, attempt.model)
        state.trials.discard(key)
        if key not in state.tried:  # later attempts at it are retries, counted when granted
            state.tried.add(key)
            self.budget.record_call(key)
        self.breaker.record(key, attempt)
        self.latency.observe(key, attempt)
