"""The metric families of the gateway: names, help texts, labels, buckets, gauge modes.

Every family is created on the registry handed in (one per app), never on prometheus_client's
global ``REGISTRY``: several apps in one process (tests) must not collide on names.

Labels are bounded by construction: surfaces, status classes, token types and scopes are small
fixed sets; ``model`` is a configured client-facing name (anything else becomes ``unknown``),
``provider`` a configured provider name. No key, account, IP, request id or text ever.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# LLM calls range from tens of milliseconds (embeddings, cached answers) to minutes (long
# generations), so the buckets reach 10 minutes, the default routing timeout.
DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
                    120.0, 300.0, 600.0)
# Time to first token is what users feel in a chat UI: finer below a few seconds.
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0,
                30.0, 60.0)

# Circuit state as a number, so "any worker sees it open" is a max (and alert rules compare).
CIRCUIT_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


@dataclass(frozen=True)
class Families:
    """The metric objects of one gateway; ``Metrics`` is the only code that touches them."""

    requests: Counter
    request_duration: Histogram
    upstream_duration: Histogram
    ttft: Histogram
    tokens: Counter
    cost: Counter
    ratelimited: Counter
    auth_failures: Counter
    circuit_state: Gauge
    spool_depth: Gauge
    spool_flush_errors: Counter
    retries: Counter
    fallbacks: Counter
    ratelimit_backend_failures: Counter
    security_events: Counter
    circuit_shed: Counter
    retries_refused: Counter
    audit_head: Gauge


def define(registry: CollectorRegistry) -> Families:
    """Create every family on ``registry``."""
    return Families(
        requests=Counter(
            "onyproxy_requests", "Client requests by surface, model, answering provider and "
            "status class (2xx, 4xx, 5xx; cancelled: the client left before any answer).",
            ["surface", "model", "provider", "status"], registry=registry),
        request_duration=Histogram(
            "onyproxy_request_duration_seconds", "Time from receiving a client request to the "
            "end of its answer (for streams: the last event).",
            ["model", "provider"], buckets=DURATION_BUCKETS, registry=registry),
        upstream_duration=Histogram(
            "onyproxy_upstream_duration_seconds", "Time of one upstream attempt until the "
            "provider answered (for streams: its response headers), failed or timed out.",
            ["provider"], buckets=DURATION_BUCKETS, registry=registry),
        ttft=Histogram(
            "onyproxy_time_to_first_token_seconds", "Streams: time from the client request "
            "to the first event written back.",
            ["model", "provider"], buckets=TTFT_BUCKETS, registry=registry),
        tokens=Counter(
            "onyproxy_tokens", "Tokens by type as the provider reported them; cached is part "
            "of prompt, reasoning part of completion.",
            ["model", "provider", "type"], registry=registry),
        cost=Counter(
            "onyproxy_cost_usd", "Metered cost in US dollars.",
            ["model", "provider"], registry=registry),
        ratelimited=Counter(
            "onyproxy_ratelimited", "Requests refused by the gateway's own rate limits, by the "
            "scope of the limit that was hit.", ["scope"], registry=registry),
        auth_failures=Counter(
            "onyproxy_auth_failures", "Failed authentications (missing, unknown, revoked or "
            "expired credentials).", ["surface"], registry=registry),
        circuit_state=Gauge(
            "onyproxy_circuit_state", "Circuit breaker of an upstream target: 0 closed, "
            "1 half-open, 2 open (with several workers: the worst state any worker sees).",
            ["provider", "model"], registry=registry, multiprocess_mode="livemax"),
        spool_depth=Gauge(
            "onyproxy_spool_depth", "Usage records waiting in the local spool for the "
            "database (summed over workers).", registry=registry,
            multiprocess_mode="livesum"),
        spool_flush_errors=Counter(
            "onyproxy_spool_flush_errors", "Failed attempts to write spooled usage records "
            "to the database.", registry=registry),
        retries=Counter(
            "onyproxy_retries", "Upstream attempts repeated on the same target, by the "
            "provider whose failure caused them.", ["provider"], registry=registry),
        fallbacks=Counter(
            "onyproxy_fallbacks", "Moves to the next target of a model, by the model and the "
            "provider that was left.", ["model", "provider"], registry=registry),
        ratelimit_backend_failures=Counter(
            "onyproxy_ratelimit_backend_failures", "Rate-limit checks that could not reach "
            "their backend (Redis), by the failure mode applied (open: let through; closed: "
            "refused).", ["failure_mode"], registry=registry),
        security_events=Counter(
            "onyproxy_security_events", "Security events raised by the security plugin, by "
            "detector: usage_spike, many_ips, auth_failures (each event once per incident, "
            "after its cooldown).", ["kind"], registry=registry),
        circuit_shed=Counter(
            "onyproxy_circuit_shed", "Client calls answered 503 at once because the circuit "
            "of every target of their model was open.", ["model"], registry=registry),
        retries_refused=Counter(
            "onyproxy_retries_refused", "Retries the forwarder wanted but was refused, by "
            "provider and reason: budget (the retry budget of the target is spent) or "
            "circuit_open (the target's circuit opened).", ["provider", "reason"],
            registry=registry),
        audit_head=Gauge(
            "onyproxy_audit_head_seq", "Number of the last entry of the audit log's hash chain "
            "when it was last anchored (at start and daily); it never goes down.",
            registry=registry, multiprocess_mode="max"),
    )


# The sample names each metric type exposes, as PromQL sees them.
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
             "gauge": ("",), "info": ("_info",), "summary": ("", "_sum", "_count")}


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every series name ``registry`` can expose, e.g. for checking dashboards and rules."""
    names: set[str] = set()
    for metric in registry.collect():
        names.update(metric.name + suffix for suffix in _SUFFIXES.get(metric.type, ("",)))
        names.update(sample.name for sample in metric.samples)
    return names
