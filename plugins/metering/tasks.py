"""The metering plugin's periodic work: re-reading month-to-date spend, closing months.

Both run in the background and survive store outages: a failed round is logged once and
tried again at the next tick.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from onyproxy import billing
from onyproxy.storage import StorageError

if TYPE_CHECKING:
    from plugins.metering.plugin import MeteringPlugin

log = logging.getLogger("onyproxy.metering")

CLOSE_CHECK_S = 3600.0  # how often months due for closing are looked for


class Background:
    """Starts and stops the periodic tasks of one metering plugin."""

    def __init__(self, plugin: MeteringPlugin) -> None:
        self.plugin = plugin
        self._tasks: list[asyncio.Task[None]] = []
        self._sync_failing = False
        self.closed_months: set[str] = set()

    async def start(self) -> None:
        await self.sync_budgets()
        self._tasks = [
            asyncio.create_task(self._every(self.plugin.config.budget_sync_s,
                                            self.sync_budgets), name="onyproxy-budget-sync"),
            asyncio.create_task(self._every(CLOSE_CHECK_S, self.close_months, first=0.0),
                                name="onyproxy-billing-close"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def sync_budgets(self) -> None:
        """Month-to-date spend from the store (what every process spent)."""
        try:
            await self.plugin.ledger.sync(self.plugin.load_spend)
        except StorageError as exc:
            if not self._sync_failing:
                log.error("metering: cannot read month-to-date spend (%s); budgets use the "
                          "last figures known%s", exc,
                          "" if self.plugin.ledger.synced else
                          f" (none yet: failure_mode {self.plugin.config.budget_failure_mode})")
            self._sync_failing = True
            return
        if self._sync_failing:
            log.warning("metering: month-to-date spend is read again")
        self._sync_failing = False

    async def close_months(self, now: datetime | None = None) -> None:
        """Write the final billing records of months that ended ``close_after_h`` ago."""
        now = now or datetime.now(UTC)
        grace = timedelta(hours=self.plugin.config.close_after_h)
        for month in billing.months_due(now, grace):
            if month in self.closed_months:
                continue
            try:
                await billing.close_month(self.plugin.gateway.store, month, now)
            except StorageError as exc:
                log.error("metering: cannot close billing month %s yet (%s)", month, exc)
                return
            self.closed_months.add(month)

    async def _every(self, seconds: float, work, first: float | None = None) -> None:
        await asyncio.sleep(seconds if first is None else first)
        while True:
            try:
                await work()
            except Exception as exc:  # a bug must not end the task
                log.exception("metering: background task failed: %s", type(exc).__name__)
            await asyncio.sleep(seconds)
