"""Routing policy: how many retries per target, how long to wait, how to back off."""

from __future__ import annotations

from dataclasses import dataclass, field

from onyproxy.exchange import Exchange, RoutePolicy
from onyproxy.pipeline import Plugin


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else f"expected zero or more, got {value}"


def _positive(value: float) -> str | None:
    return None if value > 0 else f"expected a positive number, got {value}"


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


class RoutingPlugin(Plugin):
    """Sets the exchange's :class:`RoutePolicy` from config."""

    name = "routing"
    Config = RoutingConfig

    def __init__(self, config: RoutingConfig, gateway) -> None:
        super().__init__(config, gateway)
        self.policy = RoutePolicy(retries=config.retries, timeout_s=config.timeout_s,
                                  backoff_s=config.backoff_s, max_backoff_s=config.max_backoff_s)

    async def on_request(self, ex: Exchange) -> None:
        ex.policy = self.policy
