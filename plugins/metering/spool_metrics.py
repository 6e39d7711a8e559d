"""The metering plugin's own metric families: what the spool disk refused, and what waits in
memory because of it.

They are registered on the gateway's registry (``gateway.metrics.registry``), so ``GET
/metrics`` shows them beside the core's, merged over workers like every family. The core's
``onyproxy_spool_depth`` and ``onyproxy_spool_flush_errors_total`` count the records waiting
for the store and the failed store writes.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

WRITE_OPS = ("write", "truncate", "open", "sync", "commit")


class SpoolMetrics:
    """Counters and gauges of the spool's faults; every method is cheap and never raises."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.backlog_records = Gauge(
            "onyproxy_spool_memory_backlog", "Usage records kept in memory because the spool "
            "disk refused them (summed over workers); they are lost if the process is killed.",
            registry=registry, multiprocess_mode="livesum")
        self.backlog_bytes = Gauge(
            "onyproxy_spool_memory_backlog_bytes", "Bytes of the usage records kept in memory "
            "(the limit is the metering option memory_backlog_mb).",
            registry=registry, multiprocess_mode="livesum")
        self.write_errors = Counter(
            "onyproxy_spool_write_errors", "Failed operations on the local usage spool disk, "
            "by operation: write, truncate, open, sync, commit.", ["op"], registry=registry)
        self.lost = Counter(
            "onyproxy_usage_records_lost", "Usage records dropped: the memory backlog was full "
            "(on_backlog_full: accept, or a refused request's record), or neither disk nor "
            "store took them before the process stopped.", registry=registry)
        for op in WRITE_OPS:  # present at 0, so increase() sees the first failure
            self.write_errors.labels(op)

    def write_error(self, op: str) -> None:
        self.write_errors.labels(op if op in WRITE_OPS else "write").inc()

    def backlog(self, records: int, size: int) -> None:
        self.backlog_records.set(records)
        self.backlog_bytes.set(size)

    def lose(self, count: int) -> None:
        self.lost.inc(count)


def spool_metrics(gateway: Any) -> SpoolMetrics | None:
    """The families on ``gateway``'s registry; None without one (hand-built test gateways)
    or when this registry already has them (a second metering plugin on one gateway)."""
    metrics = getattr(gateway, "metrics", None)
    registry = getattr(metrics, "registry", None)
    if registry is None:
        return None
    try:
        return SpoolMetrics(registry)
    except ValueError:  # "Duplicated timeseries": another instance registered them
        return None
