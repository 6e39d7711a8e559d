"""Plugin ``routing``: per-request retry and timeout policy for the forwarder."""

from plugins.routing.plugin import RoutingPlugin as Plugin

__all__ = ["Plugin"]
