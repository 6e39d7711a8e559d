"""Plugin ``ratelimit``: RPM, TPM and concurrency per key, account and model (memory or Redis)."""

from plugins.ratelimit.plugin import RateLimitPlugin as Plugin

__all__ = ["Plugin"]
