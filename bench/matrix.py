"""Run every (target, scenario) cell ``runs`` times, interleaved, and take medians.

Runs are interleaved (run 1 of every cell, then run 2 ...) and the order of targets rotates
between runs, so drift on a shared machine spreads over all targets instead of landing on one.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.gateways import Target
from bench.procs import PYTHON, run_json

METRICS = ("rps", "p50_ms", "p90_ms", "p99_ms", "ttfb_p50_ms", "ttfb_p90_ms", "ttfb_p99_ms",
           "rss_mb", "cpu_us")


@dataclass(frozen=True)
class Scenario:
    mode: str  # "json" | "stream"
    concurrency: int

    @property
    def label(self) -> str:
        return f"{self.mode} c{self.concurrency}"


@dataclass(frozen=True)
class Limits:
    """How long one cell runs: at most ``requests`` or ``duration_s`` (warm-up included)."""

    duration_s: float = 3.0
    warmup_s: float = 0.5
    requests: int = 60_000


@dataclass
class Entry:
    """A target and the scenarios it is measured in (all, or a subset for variants)."""

    target: Target
    scenarios: list[Scenario]
    group: str = "main"


def measure(target: Target, scenario: Scenario, limits: Limits,
            load_cores: str | None) -> dict[str, Any]:
    """One load-generator run against ``target``; the gateway's RSS is read right after.

    ``cpu_us`` is the proxy's CPU time (user + system, all its processes) per request sent:
    unlike req/s and latency it hardly moves when other work shares the machine.
    """
    cpu_before = target.child.cpu_s() if target.child else None
    spec = {"url": target.url, "headers": target.headers, "mode": scenario.mode,
            "concurrency": scenario.concurrency, "requests": limits.requests,
            "duration_s": limits.duration_s, "warmup_s": limits.warmup_s}
    line = run_json([PYTHON, "-m", "bench.load", json.dumps(spec)], load_cores,
                    timeout=limits.duration_s + 60)
    result = json.loads(line)
    result["rss_mb"] = target.rss_mb()
    if cpu_before is not None and target.child and result["sent"]:
        result["cpu_us"] = round((target.child.cpu_s() - cpu_before) / result["sent"] * 1e6, 1)
    if target.child is not None and target.child.proc.poll() is not None:
        raise RuntimeError(f"{target.name} died:\n{target.child.tail()}")
    return result


def run_matrix(entries: list[Entry], runs: int, limits: Limits, load_cores: str | None,
               progress: bool = True) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Raw results per (target name, scenario label), in run order."""
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    scenarios: list[Scenario] = []
    for entry in entries:
        scenarios += [s for s in entry.scenarios if s not in scenarios]
    cells = sum(len(e.scenarios) for e in entries) * runs
    done, started = 0, time.monotonic()
    for run in range(runs):
        rotated = entries[run % len(entries):] + entries[:run % len(entries)]
        for scenario in scenarios:
            for entry in rotated:
                if scenario not in entry.scenarios:
                    continue
                result = measure(entry.target, scenario, limits, load_cores)
                result["run"] = run + 1
                results.setdefault((entry.target.name, scenario.label), []).append(result)
                done += 1
                if progress:
                    _progress(done, cells, started, entry.target.name, scenario, result)
    return results


def _progress(done: int, cells: int, started: float, name: str, scenario: Scenario,
              result: dict[str, Any]) -> None:
    ttfb = f" ttfb50 {result['ttfb_p50_ms']}ms" if result.get("ttfb_p50_ms") else ""
    errors = f" ERRORS {result['error_kinds']}" if result["errors"] else ""
    print(f"  [{done}/{cells} {time.monotonic() - started:5.0f}s] {name:<22} "
          f"{scenario.label:<10} {result['rps']:>8.0f} req/s  p50 {result['p50_ms']}ms"
          f"{ttfb}{errors}", file=sys.stderr, flush=True)


def medians(raw: dict[tuple[str, str], list[dict[str, Any]]]) -> dict[tuple[str, str], dict]:
    """Per cell: the median of each metric over the runs, errors summed."""
    out = {}
    for key, results in raw.items():
        cell: dict[str, Any] = {"runs": len(results),
                                "errors": sum(r["errors"] for r in results),
                                "measured": sum(r["measured"] for r in results)}
        for metric in METRICS:
            values = [r[metric] for r in results if r.get(metric) is not None]
            cell[metric] = round(statistics.median(values), 3) if values else None
        cell["rps_spread"] = _spread([r["rps"] for r in results])
        kinds: dict[str, int] = {}
        for r in results:
            for kind, count in r["error_kinds"].items():
                kinds[kind] = kinds.get(kind, 0) + count
        cell["error_kinds"] = kinds
        out[key] = cell
    return out


def _spread(values: list[float]) -> float | None:
    """(max - min) / median, a rough noise figure for the runs of one cell."""
    if len(values) < 2 or not statistics.median(values):
        return None
    return round((max(values) - min(values)) / statistics.median(values), 3)
