"""Plugin ``ratelimit``: requests, tokens and concurrency per key, account and model.

Algorithm: a sliding window log. Each scope keeps the time of every request (and the tokens of
each) for the last 60 seconds; a request passes while fewer than ``rpm`` requests (and at most
``tpm`` tokens, its own estimate included) lie in the 60 seconds before it. Why this one:

- it is exact: no 60-second span ever holds more than the limit, so there is no 2x burst at a
  fixed window's edge, and "rpm = 50" means exactly 50, which the exactness promise demands;
- GCRA (a token bucket without the bucket) also avoids the edge burst in O(1) memory, but it
  refills continuously: with a full burst allowed, a minute holds up to about twice the limit
  (the burst plus the refill); it could not honour "exactly 50 of 100 in a minute" either;
- a log can be corrected after the fact, which TPM needs: a reservation made from an estimate
  is replaced by the provider's real usage when the call ends (streams included);
- its cost is memory proportional to the limit (one entry per request per scope, for a minute),
  which is small for per-key limits; the Redis keys expire with their content.

Concurrency is a set of leases, one per call in flight, released in ``on_complete`` (which runs
exactly once per exchange, also after errors and client disconnects). In Redis a lease also has
an expiry, renewed while the call runs, so slots of a gateway that died free themselves.

Backends: ``memory`` is exact within one process and refused with ``server.workers > 1`` (each
worker would count alone); ``redis`` checks and records every scope in one atomic Lua script on
Redis's clock, so any number of workers and machines share exact limits.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from onyproxy.config.errors import ConfigError
from onyproxy.errors import GatewayError
from onyproxy.exchange import Exchange
from onyproxy.pipeline import Plugin
from plugins.ratelimit.config import RateLimitConfig, check_config, memory_with_workers
from plugins.ratelimit.estimate import estimate_tokens
from plugins.ratelimit.headers import format_duration, rate_headers, retry_headers
from plugins.ratelimit.memory import MemoryBackend
from plugins.ratelimit.scopes import scopes_for
from plugins.ratelimit.window import NEVER, Backend, BackendUnavailable, Outcome, Ticket

log = logging.getLogger("onyproxy.ratelimit")

# How a refusal names its scope to the client (``Scope.kind`` is the bounded metric label).
SCOPE_TITLES = {"key": "per API key", "account": "per account",
                "model": "per model, all callers together", "key_model": "per caller and model",
                "ip": "per client IP"}


@dataclass
class Counters:
    """Totals of this process since start, for logs and tests; Prometheus gets the same facts
    through ``gateway.metrics`` (see :mod:`onyproxy.metrics`).

    ``rejected`` is keyed by (scope kind, limit): bounded labels, never a key or an IP.
    """

    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed_open: int = 0  # let through unchecked because the backend was unreachable
    failed_closed: int = 0  # answered 503 because the backend was unreachable


class RateLimitPlugin(Plugin):
    """Checks every limited scope before the call; corrects tokens and frees slots after it."""

    name = "ratelimit"
    Config = RateLimitConfig
    check_config = staticmethod(check_config)

    def __init__(self, config: RateLimitConfig, gateway: Any,
                 backend: Backend | None = None) -> None:
        super().__init__(config, gateway)
        workers = gateway.config.server.workers
        if config.backend == "memory" and workers > 1:
            # parse_config already refuses this; a config built in code must not slip through.
            raise ConfigError([f"ratelimit.backend: {memory_with_workers(workers)}"])
        self.backend = backend or _make_backend(config)
        self.counters = Counters()
        self.down_since: float | None = None

    async def start(self) -> None:
        await self.backend.start()
        ping = getattr(self.backend, "ping", None)
        if ping is not None and self.config.failure_mode == "closed":
            # Closed means no traffic without Redis: a load balancer should know.
            self.gateway.readiness[self.name] = ping

    async def stop(self) -> None:
        await self.backend.stop()

    async def on_request(self, ex: Exchange) -> None:
        scopes = scopes_for(ex, self.config)
        if not scopes:
            return
        ticket = Ticket(lease=uuid.uuid4().hex, scopes=scopes, tokens=estimate_tokens(ex.body))
        # Kept before the call: if the client leaves while Redis answers, on_complete still
        # releases whatever the script recorded.
        ex.state[self.name] = ticket
        try:
            outcome = await self.backend.acquire(ticket)
        except BackendUnavailable as exc:
            ex.state.pop(self.name, None)
            self._unavailable(str(exc))
            return
        self._available()
        headers = rate_headers(scopes, outcome)
        ex.response_headers.update(headers)
        if not outcome.allowed:
            raise self._refusal(ex, ticket, outcome, headers)

    async def on_complete(self, ex: Exchange) -> None:
        ticket = ex.state.get(self.name)
        if not isinstance(ticket, Ticket) or ticket.finished:
            return
        ticket.finished = True
        used = used_tokens(ex, ticket)
        if not needs_finish(ticket, used):
            return  # only rpm limits, or the estimate was exact: spare the round-trip
        try:
            await self.backend.finish(ticket, used)
        except BackendUnavailable as exc:
            # The lease expires by itself; the token reservation stands as an estimate.
            self._unavailable(str(exc), during_request=False)
        else:
            self._available()

    def _refusal(self, ex: Exchange, ticket: Ticket, outcome: Outcome,
                 headers: dict[str, str]) -> GatewayError:
        assert outcome.blocked is not None and outcome.reason is not None
        scope = ticket.scopes[outcome.blocked]
        self.counters.rejected[(scope.kind, outcome.reason)] += 1
        # Nothing to release; what is left names the scope for onyproxy_ratelimited_total.
        ex.state[self.name] = {"scope": scope.kind, "limit": outcome.reason}
        return GatewayError(429, "rate_limit_error",
                            refusal_message(scope.kind, outcome, ticket.tokens, scope.tpm),
                            code="rate_limit_exceeded",
                            headers={**headers, **retry_headers(outcome.retry_after_us)})

    def _unavailable(self, error: str, during_request: bool = True) -> None:
        """Apply ``failure_mode``; log the outage once, when it starts."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.error("ratelimit: the %s backend is unreachable (%s); failure_mode %s: %s",
                      self.config.backend, error, self.config.failure_mode,
                      "answering 503" if self.config.failure_mode == "closed"
                      else "letting requests through unchecked")
        if not during_request:
            return
        if self.gateway.metrics is not None:
            self.gateway.metrics.ratelimit_backend_failure(self.config.failure_mode)
        if self.config.failure_mode == "open":
            self.counters.failed_open += 1
            return
        self.counters.failed_closed += 1
        raise GatewayError(503, "api_error",
                           "Rate limiting is temporarily unavailable; please retry shortly.",
                           code="rate_limit_unavailable")

    def _available(self) -> None:
        if self.down_since is not None:
            log.warning("ratelimit: the %s backend is reachable again after %.1f s",
                        self.config.backend, time.monotonic() - self.down_since)
            self.down_since = None


def used_tokens(ex: Exchange, ticket: Ticket) -> int:
    """What the call really cost: the provider's count, nothing if no provider answered, else
    the estimate (e.g. the client left mid-stream before the usage arrived)."""
    if ex.usage.reported:
        return ex.usage.total_tokens
    if ex.provider is None:
        return 0
    return ticket.tokens


def needs_finish(ticket: Ticket, used: int) -> bool:
    """Whether the exchange left anything to release or correct."""
    return any(s.concurrent is not None or (s.tpm is not None and used != ticket.tokens)
               for s in ticket.scopes)


def refusal_message(kind: str, outcome: Outcome, tokens: int, tpm: int | None) -> str:
    """Why a request was refused, naming the scope kind (never an id, a key or content)."""
    title = SCOPE_TITLES.get(kind, kind)
    if outcome.reason == "tokens" and outcome.retry_after_us == NEVER:
        return (f"Request too large: it may use about {tokens} tokens (input estimate plus "
                f"max_tokens), more than the limit of {tpm} tokens per minute ({title}).")
    what = {"requests": "requests per minute", "tokens": "tokens per minute",
            "concurrent": "concurrent requests"}[outcome.reason or "requests"]
    if outcome.retry_after_us == NEVER:
        return f"No {what} are allowed at the moment ({title})."
    wait = format_duration(outcome.retry_after_us or 0)
    return f"Rate limit reached for {what} ({title}). Please try again in {wait}."


def _make_backend(config: RateLimitConfig) -> Backend:
    if config.backend == "redis":
        # Imported here: the memory backend must work without the redis package loaded.
        from plugins.ratelimit.redis_backend import RedisBackend

        return RedisBackend(config)
    return MemoryBackend()
