"""Options of the ``metering`` plugin, and the checks that need the whole gateway config."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from onyproxy.catalog import catalog_path, load_catalog
from onyproxy.config.errors import ConfigError

if TYPE_CHECKING:
    from onyproxy.config.model import GatewayConfig


def _positive(value: float) -> str | None:
    return None if value > 0 else f"expected a positive number, got {value}"


def _at_least_one(value: float) -> str | None:
    return None if value >= 1 else f"expected 1 or more, got {value}"


@dataclass(frozen=True)
class MeteringConfig:
    """Options of the ``metering`` plugin."""

    spool_dir: str = field(default="", metadata={
        "doc": "where usage records wait for the database; empty: a 'spool' folder beside "
               "the SQLite file, or ./data/spool with MongoDB"})
    batch_size: int = field(default=500, metadata={
        "check": _positive, "doc": "most records written to the store in one insert"})
    flush_interval_s: float = field(default=1.0, metadata={
        "check": _positive, "doc": "the longest a spooled record waits before a store write "
                                   "is tried (writes also start as soon as records arrive)"})
    retry_max_s: float = field(default=30.0, metadata={
        "check": _positive, "doc": "longest pause between store writes while it fails"})
    segment_mb: float = field(default=16.0, metadata={
        "check": _positive, "doc": "a spool file is closed and a new one started at this size"})
    memory_backlog_mb: float = field(default=64.0, metadata={
        "check": _positive, "doc": "when the spool disk refuses records (full, read-only), "
                                   "they wait in memory up to this size, going to the store "
                                   "from there and to the disk once it takes them again"})
    on_backlog_full: Literal["refuse", "accept"] = field(default="refuse", metadata={
        "doc": "the memory backlog is full: refuse answers new requests 503 until records "
               "drain (those already admitted are still recorded); accept lets them through "
               "and drops their records, counted in onyproxy_usage_records_lost_total"})
    budget_failure_mode: Literal["closed", "open"] = field(default="closed", metadata={
        "doc": "budget unknown because the store is unreachable: closed answers 503 to "
               "callers that have a budget, open lets them through"})
    budget_sync_s: float = field(default=60.0, metadata={
        "check": _positive, "doc": "how often month-to-date spend is re-read from the store "
                                   "(what other workers and gateways spent)"})
    account_cache_s: float = field(default=60.0, metadata={
        "check": _positive, "doc": "an account's budget is re-read from the store after this "
                                   "long"})
    estimate_margin: float = field(default=1.2, metadata={
        "check": _at_least_one, "doc": "budget reservations count input tokens times this "
                                       "(providers' tokenizers differ from the estimate's)"})
    default_max_output: int = field(default=4096, metadata={
        "check": _positive, "doc": "output tokens reserved when neither the request nor the "
                                   "catalog gives a ceiling"})
    close_after_h: float = field(default=1.0, metadata={
        "check": _positive, "doc": "a month's billing records are closed this many hours "
                                   "after it ended (late spooled records get in first)"})


def check_config(config: MeteringConfig, gateway: GatewayConfig) -> Iterator[tuple[str, str]]:
    """The catalog must load: prices are needed from the first request on."""
    try:
        load_catalog(catalog_path(gateway))
    except ConfigError as exc:
        for problem in exc.problems:
            yield "", f"model catalog: {problem}"


def spool_root(config: MeteringConfig, gateway: GatewayConfig) -> Path:
    """The spool folder: configured, beside the SQLite file, or ./data/spool."""
    if config.spool_dir:
        return Path(config.spool_dir).expanduser()
    url = gateway.storage.url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        from onyproxy.storage.sqlite import path_from_url

        return Path(path_from_url(url)).parent / "spool"
    return Path("data") / "spool"
