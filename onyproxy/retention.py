"""Retention (DESIGN.md §4): usage events, deleted accounts and billing records are removed
once their period in ``retention:`` has passed. The security plugin's events hold (hashed)
client addresses like usage events hold IPs, so they are kept as long as usage events
(``usage_events_days``), and go with their account when it is purged.

:func:`run_retention` does one pass; ``onyproxy retention run`` calls it, and so does
:class:`RetentionJob`, which every gateway process starts. The job takes a lease in the store
before each pass, so among all the processes and machines sharing one database a single one
does the work per interval. A pass is idempotent (it deletes by cut-off time), so a pass that
runs twice, or is interrupted, does no harm. MongoDB's TTL indexes expire usage events and
billing records on their own as well (security events too, with the usage events' period);
the pass catches what they have not reached yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from aiohttp import web

from onyproxy.config.model import RetentionConfig
from onyproxy.logs import log_crash
from onyproxy.storage import AuditEntry, StorageError, Store, to_utc, utcnow

log = logging.getLogger("onyproxy.retention")

LEASE = "retention"
FIRST_RUN_S = 60.0  # soon after start, but not while the gateway is still warming up


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """What is old enough to go: usage and security events before ``usage_events``, accounts
    deleted before ``deleted_accounts``, billing months before ``billing_month``
    (``YYYY-MM``)."""

    usage_events: datetime
    deleted_accounts: datetime
    billing_month: str


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one pass removed (or, in a dry run, would remove), per kind of record."""

    usage_events: int
    security_events: int  # past their period, and those of the purged accounts
    accounts: int
    keys: int
    billing_records: int
    dry_run: bool
    cutoffs: Cutoffs

    def removed(self) -> dict[str, int]:
        """The counts per kind that are not zero."""
        counts = {"usage_events": self.usage_events, "security_events": self.security_events,
                  "accounts": self.accounts, "keys": self.keys,
                  "billing_records": self.billing_records}
        return {kind: n for kind, n in counts.items() if n}

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["cutoffs"] = {
            "usage_events_before": _stamp(self.cutoffs.usage_events),
            "accounts_deleted_before": _stamp(self.cutoffs.deleted_accounts),
            "billing_months_before": self.cutoffs.billing_month,
        }
        return data


def _stamp(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cutoffs(config: RetentionConfig, now: datetime) -> Cutoffs:
    """The cut-off times of ``config`` at ``now``. Billing keeps whole months: ten years on
    2035-03-15 keeps March 2025 and later."""
    now = to_utc(now)
    return Cutoffs(
        usage_events=now - timedelta(days=config.usage_events_days),
        deleted_accounts=now - timedelta(days=config.deleted_accounts_days),
        billing_month=f"{now.year - config.billing_years:04d}-{now.month:02d}",
    )


async def run_retention(store: Store, config: RetentionConfig, *, now: datetime | None = None,
                        dry_run: bool = False) -> RetentionReport:
    """One retention pass at ``now`` (default: the current time).

    Security events past their period go before the accounts are purged, so a real pass
    counts each event once. A dry run deletes nothing in between: an event both past its
    period and of a purged account is counted twice there (only when passes have not run
    for a while; otherwise earlier passes removed such events already)."""
    limits = cutoffs(config, now or utcnow())
    events = await store.purge_usage_events(limits.usage_events, dry_run=dry_run)
    security = await store.purge_security_events(limits.usage_events, dry_run=dry_run)
    accounts = await store.purge_deleted_accounts(limits.deleted_accounts, dry_run=dry_run)
    billing = await store.purge_billing_records(limits.billing_month, dry_run=dry_run)
    return RetentionReport(usage_events=events,
                           security_events=security + accounts.security_events,
                           accounts=accounts.accounts, keys=accounts.keys,
                           billing_records=billing, dry_run=dry_run, cutoffs=limits)


class RetentionJob:
    """Runs :func:`run_retention` every ``retention.job_interval_s`` in the background.

    ``first_run_s`` is the delay before the first pass. Failures (the database is down) are
    logged and the next interval tries again; they never reach the gateway's requests.
    """

    def __init__(self, store: Store, config: RetentionConfig, *,
                 first_run_s: float = FIRST_RUN_S) -> None:
        self.store = store
        self.config = config
        self.interval_s = config.job_interval_s
        self.first_run_s = min(first_run_s, self.interval_s)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._task: asyncio.Task[None] | None = None
        self.passes = 0  # how many passes this process ran (tests read it)

    def start(self) -> None:
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="onyproxy-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        await asyncio.sleep(self.first_run_s)
        while True:
            try:
                await self.tick()
            except Exception as exc:  # a bug must not end the job for the process' lifetime
                log_crash("retention job", exc)
            await asyncio.sleep(self.interval_s)

    async def tick(self) -> RetentionReport | None:
        """Run a pass if this process wins the lease for this interval."""
        now = utcnow()
        # A little shorter than the interval, so the next tick of the same process is not
        # refused by its own lease from the previous one.
        until = now + timedelta(seconds=self.interval_s * 0.9)
        try:
            if not await self.store.claim_lease(LEASE, self.holder, now=now, until=until):
                return None
            report = await run_retention(self.store, self.config, now=now)
            self.passes += 1
            removed = report.removed()
            if removed:
                log.info("retention removed %s",
                         ", ".join(f"{v} {k}" for k, v in removed.items()))
                await self.store.append_audit(AuditEntry("gateway:retention", "retention.run",
                                                         None, removed))
        except StorageError as exc:
            log.warning("retention pass failed, next try in %gs: %s", self.interval_s, exc)
            return None
        return report


RETENTION_JOB: web.AppKey[RetentionJob] = web.AppKey("retention_job", RetentionJob)
