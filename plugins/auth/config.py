"""Options of the ``auth`` plugin."""

from __future__ import annotations

from dataclasses import dataclass, field

from onyproxy.client_address import check_networks


def _positive(value: float) -> str | None:
    return None if value > 0 else f"expected a positive number, got {value}"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else f"expected zero or more, got {value}"


@dataclass(frozen=True)
class FailuresConfig:
    """How wrong keys from one client IP are slowed, then blocked (per gateway process)."""

    max: int = field(default=10, metadata={
        "check": _positive, "doc": "wrong keys within window_s that block the IP"})
    window_s: float = field(default=60.0, metadata={
        "check": _positive, "doc": "the sliding window failures are counted in"})
    block_s: float = field(default=300.0, metadata={
        "check": _positive, "doc": "how long a blocked IP gets 429 (with retry-after)"})
    delay_s: float = field(default=0.1, metadata={
        "check": _non_negative,
        "doc": "each failure after the first in the window delays the 401 this much more "
               "(at most 2 s)"})


@dataclass(frozen=True)
class AuthConfig:
    """Options of the ``auth`` plugin."""

    cache_ttl_s: float = field(default=10.0, metadata={
        "check": _positive,
        "doc": "a known key is re-read from the store after this long: a revoked key, or one "
               "of a suspended account, stops working within this time on every worker"})
    negative_ttl_s: float = field(default=2.0, metadata={
        "check": _non_negative,
        "doc": "an unknown key is remembered as unknown this long (spares the store floods)"})
    stale_ttl_s: float = field(default=86400.0, metadata={
        "check": _non_negative,
        "doc": "while the store is unreachable, keys verified within this time keep working; "
               "0 answers 503 to every key that needs the store"})
    last_used_interval_s: float = field(default=30.0, metadata={
        "check": _positive, "doc": "how often keys' last_used_at is written, in one batch"})
    failures: FailuresConfig = field(default_factory=FailuresConfig, metadata={
        "doc": "slowing and blocking client IPs that present wrong keys"})
    trusted_proxies: list[str] = field(default_factory=list, metadata={
        "check": check_networks,
        "doc": "load balancers (IPs or CIDRs) whose X-Forwarded-For names the client whose "
               "failures are counted; empty: the TCP peer is the client"})
