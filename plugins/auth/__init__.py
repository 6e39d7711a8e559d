"""Plugin ``auth``: API keys from every SDK's header, cached lookups, per-IP failure blocking."""

from plugins.auth.plugin import AuthPlugin as Plugin

__all__ = ["Plugin"]
