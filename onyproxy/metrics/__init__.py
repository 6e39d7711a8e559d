"""Prometheus metrics of the gateway (DESIGN.md §1), correct across worker processes.

The app creates one :class:`Metrics` per process and puts it on ``gateway.metrics``; the core
records every finished exchange with ``metrics.record(ex)``; ``GET /metrics`` exposes them
(:mod:`onyproxy.metrics.view`). With ``server.workers > 1`` the values live in per-worker
files that every scrape merges (:mod:`onyproxy.metrics.multiprocess`).

Counted from each exchange, with no plugin involvement (do not count these again):

- ``onyproxy_requests_total{surface,model,provider,status}``: ``status`` is the class
  (``2xx``, ``4xx``, ``5xx``; ``cancelled`` when the client left before an answer; a stream
  that broke after its 200 counts by the error it ended with);
  ``model`` the configured client-facing name or ``unknown``; ``provider`` the one that
  answered, else the last one tried, else ``none``.
- ``onyproxy_request_duration_seconds{model,provider}`` and, for streams,
  ``onyproxy_time_to_first_token_seconds{model,provider}``.
- ``onyproxy_upstream_duration_seconds{provider}``: every attempt in ``ex.attempts``.
- ``onyproxy_retries_total{provider}`` (another attempt at the same target) and
  ``onyproxy_fallbacks_total{model,provider}`` (the next target; ``provider`` is the one left).
- ``onyproxy_tokens_total{model,provider,type}``, ``type`` = prompt | completion | cached |
  reasoning, from ``ex.usage``; ``onyproxy_cost_usd_total{model,provider}`` from
  ``ex.cost_usd`` when a plugin set it (before or in ``on_complete``).
- ``onyproxy_auth_failures_total{surface}``: exchanges answered 401.
- ``onyproxy_ratelimited_total{scope}``: exchanges answered 429 with error code
  ``rate_limit_exceeded``. The ratelimit plugin names the limit in its state:
  ``ex.state["ratelimit"]`` a mapping with ``"scope"`` or an object with ``.scope``, one of
  key | account | model | key_model | ip | global (others count as ``other``).

The API plugins call (``self.gateway.metrics``; may be ``None`` in hand-built test gateways):

- ``spool(depth)`` — records waiting in this process's spool (gauge, summed over workers);
- ``spool_flush_error()`` — a spool batch failed to reach the database;
- ``ratelimit_backend_failure(failure_mode)`` — Redis unreachable; ``"open"`` or ``"closed"``;
- ``auth_failure(surface="admin")`` — a failed sign-in outside the client API (``admin``,
  ``ui``); client API 401s are already counted;
- ``ratelimited(scope)`` — a refusal that is not the answer of an exchange;
- ``security_event(kind)`` — the security plugin raised an event (``usage_spike`` |
  ``many_ips`` | ``auth_failures``): ``onyproxy_security_events_total{kind}``;
- ``circuit_shed(model)`` — a call answered 503 at once, every target's circuit being open:
  ``onyproxy_circuit_shed_total{model}``;
- ``retry_refused(provider, reason)`` — a retry not granted (``budget`` | ``circuit_open``):
  ``onyproxy_retries_refused_total{provider,reason}``;
- ``circuit(provider, model, state)`` — a breaker changed (``closed`` | ``half_open`` |
  ``open``). The routing plugin need not call it: its ``circuit_states()`` (a mapping
  ``"provider/model" -> state``) is read before every scrape and after failed attempts.

Labels stay bounded: configured names and small fixed sets only; never a key, account, IP,
request id or any text from a request.
"""

from onyproxy.metrics.recording import Metrics

__all__ = ["Metrics"]
