"""``Metrics``: one gateway's registry, the recording of each exchange, and the plugin API.

See the package docstring (:mod:`onyproxy.metrics`) for what plugins call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.multiprocess import MultiProcessCollector

from onyproxy.logs import log_crash
from onyproxy.metrics import multiprocess
from onyproxy.metrics.definitions import CIRCUIT_VALUES, Families, define

if TYPE_CHECKING:
    from onyproxy.exchange import Exchange

UNKNOWN = "unknown"  # a model name that is not configured (clients may send anything)
NONE = "none"  # no provider: the request ended before any upstream was tried
SCOPES = frozenset({"key", "account", "model", "key_model", "ip", "global", UNKNOWN})
AUTH_SURFACES = frozenset({"openai", "anthropic", "gemini", "admin", "ui"})
SECURITY_KINDS = frozenset({"usage_spike", "many_ips", "auth_failures"})
RETRY_REFUSALS = frozenset({"budget", "circuit_open"})
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_TOKEN_TYPES = (("prompt", "prompt_tokens"), ("completion", "completion_tokens"),
                ("cached", "cached_tokens"), ("reasoning", "reasoning_tokens"))


class Metrics:
    """The metrics of one gateway process; ``gateway.metrics`` in plugins.

    ``gateway`` gives the configured client-facing model names (the only ones used as labels)
    and, later, the pipeline whose plugins keep state worth exposing (circuit breakers).
    """

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.registry = CollectorRegistry()
        self.families: Families = define(self.registry)
        self._models = frozenset(gateway.config.models)
        self._children: dict[tuple[Any, ...], Any] = {}
        self._circuits_off_closed: set[tuple[str, str]] = set()
        for kind in SECURITY_KINDS:
            # Present at 0 from the start: increase() in an alert rule needs a sample before
            # the first event, or that event (often the only one) would go unseen.
            self._child(self.families.security_events, kind)
        path = multiprocess.active()
        if path:
            # This worker's own registry holds only its share; a scrape must merge every
            # worker's files. Process metrics are per process and unsupported in this mode.
            self.exposed = CollectorRegistry()
            MultiProcessCollector(self.exposed, path)
        else:
            self.exposed = self.registry
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    # --- the API other parts of the gateway call ------------------------------------------

    def auth_failure(self, surface: str = "admin") -> None:
        """A failed sign-in outside the client API (admin API, dashboard).

        Client API calls answered 401 are counted from their exchange; do not count them twice.
        """
        self._child(self.families.auth_failures, _bounded(surface, AUTH_SURFACES)).inc()

    def ratelimited(self, scope: str) -> None:
        """A request refused by a limit outside any exchange (exchanges count themselves)."""
        self._child(self.families.ratelimited, _bounded(scope, SCOPES)).inc()

    def ratelimit_backend_failure(self, failure_mode: str) -> None:
        """The rate-limit backend was unreachable; ``failure_mode`` is ``open`` or ``closed``."""
        mode = failure_mode if failure_mode in ("open", "closed") else "other"
        self._child(self.families.ratelimit_backend_failures, mode).inc()

    def security_event(self, kind: str) -> None:
        """The security plugin raised an event of ``kind`` (others count as ``other``)."""
        self._child(self.families.security_events, _bounded(kind, SECURITY_KINDS)).inc()

    def spool(self, depth: int) -> None:
        """Usage records of this process now waiting in the spool."""
        self.families.spool_depth.set(depth)

    def audit_head(self, seq: int) -> None:
        """The audit chain's head was anchored at entry ``seq``."""
        self.families.audit_head.set(seq)

    def spool_flush_error(self) -> None:
        """A batch of spooled records could not be written to the database."""
        self.families.spool_flush_errors.inc()

    def circuit_shed(self, model: str) -> None:
        """A call answered 503 at once: every target of ``model`` had its circuit open."""
        model = model if model in self._models else UNKNOWN
        self._child(self.families.circuit_shed, model).inc()

    def retry_refused(self, provider: str, reason: str) -> None:
        """A retry at ``provider`` was refused: ``budget`` | ``circuit_open``."""
        self._child(self.families.retries_refused, provider,
                    _bounded(reason, RETRY_REFUSALS)).inc()

    def circuit(self, provider: str, model: str, state: str) -> None:
        """A target's breaker state: ``closed`` | ``half_open`` | ``open``."""
        value = CIRCUIT_VALUES.get(state, CIRCUIT_VALUES["open"])
        self._child(self.families.circuit_state, provider, model).set(value)
        if value:
            self._circuits_off_closed.add((provider, model))
        else:
            self._circuits_off_closed.discard((provider, model))

    def refresh(self) -> None:
        """Pull state other plugins keep (circuit breakers); runs before every scrape."""
        routing = self.gateway.pipeline.get("routing")
        states: Callable[[], dict[str, str]] | None = getattr(routing, "circuit_states", None)
        if states is None:
            return
        for key, state in states().items():
            provider, _, model = key.partition("/")
            self.circuit(provider, model, state)

    # --- recording one exchange ------------------------------------------------------------

    def record(self, ex: Exchange) -> None:
        """Count a finished exchange; never raises (metrics must not break a request)."""
        try:
            self._record(ex)
            if self._circuits_off_closed or _any_failed(ex):
                # Keep this worker's circuit gauges current between scrapes (another worker
                # may answer the scrape); only when something may have changed, so the
                # healthy hot path does not pay for it.
                self.refresh()
        except Exception as exc:
            log_crash("metrics.record", exc)

    def _record(self, ex: Exchange) -> None:
        f = self.families
        model = ex.model if ex.model in self._models else UNKNOWN
        attempts = ex.attempts
        provider = ex.provider or (attempts[-1].provider if attempts else NONE)
        self._child(f.requests, ex.surface, model, provider, status_class(ex)).inc()
        self._child(f.request_duration, model, provider).observe(ex.latency_s)
        ttft = ex.ttft_s
        if ttft is not None:
            self._child(f.ttft, model, provider).observe(ttft)
        usage = ex.usage
        for kind, attr in _TOKEN_TYPES:
            count = getattr(usage, attr)
            if count > 0:
                self._child(f.tokens, model, provider, kind).inc(count)
        if ex.cost_usd is not None and ex.cost_usd > 0:
            self._child(f.cost, model, provider).inc(float(ex.cost_usd))
        if attempts:
            self._record_attempts(ex, model)
        error = ex.error
        if error is not None:
            if ex.status == 401:
                self._child(f.auth_failures, _bounded(ex.surface, AUTH_SURFACES)).inc()
            elif ex.status == 429 and error.code == "rate_limit_exceeded":
                self._child(f.ratelimited, _bounded(scope_of(ex), SCOPES)).inc()

    def _record_attempts(self, ex: Exchange, model: str) -> None:
        f = self.families
        previous = None
        for attempt in ex.attempts:
            if attempt.status is not None or attempt.error is not None:
                # An attempt cut short by the client leaving has no duration worth keeping.
                self._child(f.upstream_duration, attempt.provider).observe(attempt.duration_s)
            if previous is not None:
                if (previous.provider, previous.model) == (attempt.provider, attempt.model):
                    self._child(f.retries, previous.provider).inc()
                else:
                    self._child(f.fallbacks, model, previous.provider).inc()
            previous = attempt

    def _child(self, family: Any, *labels: str) -> Any:
        """``family.labels(*labels)``, cached: label sets are few, and the lookup in
        prometheus-client validates and locks on every call (about 1 µs each)."""
        key = (id(family), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child


def status_class(ex: Exchange) -> str:
    """``2xx`` ... ``5xx``; ``cancelled`` when the client left before any status was set.

    A stream that broke after its 200 went out counts by the error it ended with: the client
    got a failed answer, and error-rate alerts should see it.
    """
    status = ex.status
    if ex.error is not None and "stream_error" in ex.flags:
        status = ex.error.status
    return _STATUS_CLASSES.get(status // 100, "cancelled")


def scope_of(ex: Exchange) -> str:
    """The scope of the limit that refused ``ex``, as the ratelimit plugin left it.

    The plugin's state (``ex.state["ratelimit"]``) may be a mapping or an object with a
    ``scope`` entry or attribute; anything else counts as ``unknown``.
    """
    state = ex.state.get("ratelimit")
    scope = state.get("scope") if isinstance(state, dict) else getattr(state, "scope", None)
    return scope if isinstance(scope, str) else UNKNOWN


def _bounded(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else "other"


def _any_failed(ex: Exchange) -> bool:
    return any(a.error is not None for a in ex.attempts)
