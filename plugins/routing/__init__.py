"""Plugin ``routing``: retry policy, target order per strategy, circuit breaker per target."""

from plugins.routing.plugin import RoutingPlugin as Plugin

__all__ = ["Plugin"]
