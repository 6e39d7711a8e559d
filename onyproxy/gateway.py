"""The objects one running gateway shares between requests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from onyproxy.config.model import GatewayConfig
from onyproxy.failure_guard import FailureGuard
from onyproxy.pipeline import Pipeline
from onyproxy.providers.base import Adapter

ReadinessCheck = Callable[[], Awaitable[bool]]


@dataclass(eq=False)
class Gateway:
    """Config, the shared upstream session, adapters, pipeline and services of one process.

    Plugins receive it at construction; services a plugin needs (the store, metrics) are found
    here rather than imported, so tests can hand in their own.
    """

    config: GatewayConfig
    session: aiohttp.ClientSession
    adapters: dict[str, Adapter]
    pipeline: Pipeline = field(default_factory=lambda: Pipeline([]))
    store: Any | None = None
    metrics: Any | None = None
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    # Failed sign-ins on the API, the admin API and the dashboard count together.
    failure_guard: FailureGuard = field(default_factory=FailureGuard)

    async def ready(self) -> dict[str, bool]:
        """Each readiness check by name; a check that raises counts as not ready."""
        results = {}
        for name, check in self.readiness.items():
            try:
                results[name] = bool(await check())
            except Exception:
                results[name] = False
        return results
