"""Options of the ``ratelimit`` plugin, and the checks that need the whole gateway config."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from onyproxy.config.model import GatewayConfig


def _positive(value: float) -> str | None:
    return None if value > 0 else f"expected a positive number, got {value}"


def _redis_url(value: str) -> str | None:
    if urlsplit(value).scheme in ("redis", "rediss", "unix"):
        return None
    return f"expected redis://host:port/db, rediss://... or unix:///path, got {value!r}"


@dataclass(frozen=True)
class Limits:
    """Limits of one scope; a missing value means "no limit of that kind"."""

    rpm: int | None = field(default=None, metadata={
        "check": _positive, "doc": "requests per minute (sliding 60 s window)"})
    tpm: int | None = field(default=None, metadata={
        "check": _positive, "doc": "tokens per minute, input + output (sliding 60 s window)"})
    concurrent: int | None = field(default=None, metadata={
        "check": _positive, "doc": "requests in flight at the same time"})


@dataclass(frozen=True)
class ModelLimits:
    """Limits for one model: for all callers together, and optionally per key."""

    rpm: int | None = field(default=None, metadata={
        "check": _positive, "doc": "requests per minute to this model, all callers together"})
    tpm: int | None = field(default=None, metadata={
        "check": _positive, "doc": "tokens per minute of this model, all callers together"})
    concurrent: int | None = field(default=None, metadata={
        "check": _positive, "doc": "requests in flight to this model, all callers together"})
    per_key: Limits | None = field(default=None, metadata={
        "doc": "limits of each key (or client IP) on this model"})


@dataclass(frozen=True)
class RateLimitConfig:
    """Options of the ``ratelimit`` plugin."""

    backend: Literal["memory", "redis"] = field(default="memory", metadata={
        "doc": "memory: one process only; redis: exact across workers and machines"})
    url: str | None = field(default=None, metadata={
        "check": _redis_url, "doc": "Redis URL, required with backend: redis"})
    prefix: str = field(default="onyproxy:rl:", metadata={
        "doc": "prefix of every Redis key; wrap it in {braces} to use a Redis Cluster"})
    defaults: Limits = field(default_factory=Limits, metadata={
        "doc": "per key (or client IP without auth); a key's own limits override these"})
    account_defaults: Limits = field(default_factory=Limits, metadata={
        "doc": "per account, all its keys together; the account's own limits override these"})
    model_limits: dict[str, ModelLimits] = field(default_factory=dict, metadata={
        "doc": "per model name clients ask for (see ModelLimits)"})
    failure_mode: Literal["closed", "open"] = field(default="closed", metadata={
        "doc": "Redis unreachable: closed answers 503, open lets traffic through"})
    timeout_s: float = field(default=1.0, metadata={
        "check": _positive, "doc": "longest wait for Redis before it counts as unreachable"})
    lease_s: float = field(default=60.0, metadata={
        "check": _positive,
        "doc": "Redis: a concurrency slot of a gateway that died is freed after this long"})


def check_config(config: RateLimitConfig, gateway: GatewayConfig) -> Iterator[tuple[str, str]]:
    """Problems that need the rest of the gateway config: ``(key, message)`` pairs."""
    if config.backend == "redis" and not config.url:
        yield "url", "required with backend: redis (e.g. redis://127.0.0.1:6379/0)"
    if config.backend == "memory" and gateway.server.workers > 1:
        yield "backend", memory_with_workers(gateway.server.workers)
    for name in config.model_limits:
        if name not in gateway.models:
            known = ", ".join(sorted(gateway.models)) or "none"
            yield f"model_limits.{name}", f"unknown model '{name}' (known: {known})"


def memory_with_workers(workers: int) -> str:
    """Why memory counters and several workers do not mix, and what to do instead."""
    return (f"the memory backend counts in each process separately, so with server.workers = "
            f"{workers} every limit would allow {workers}x its value; use backend: redis "
            f"(with url: redis://...) or server.workers: 1")
