"""Plugin ``metering``: usage events, cost, durable exactly-once recording, budgets."""

from plugins.metering.plugin import MeteringPlugin as Plugin

__all__ = ["Plugin"]
