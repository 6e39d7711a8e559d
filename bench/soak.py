"""Soak: many requests through the full pipeline, the gateway's RSS sampled as they go."""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.gateways import Target
from bench.matrix import Limits, Scenario, measure


def soak(target: Target, total: int, every: int, concurrency: int,
         load_cores: str | None) -> dict[str, Any]:
    """``total`` requests in chunks of ``every`` (alternating JSON and stream requests); the RSS
    after each chunk. Flat means: after the first chunk (warm-up: pools, caches, allocator
    arenas), growth stays within a few MB."""
    samples = [{"requests": 0, "rss_mb": target.rss_mb(), "rps": None, "errors": 0}]
    limits = Limits(duration_s=3600, warmup_s=0, requests=every)
    sent, started = 0, time.monotonic()
    while sent < total:
        result = measure(target, Scenario("mixed", concurrency), limits, load_cores)
        sent += result["sent"]
        samples.append({"requests": sent, "rss_mb": result["rss_mb"], "rps": result["rps"],
                        "errors": result["errors"], "p50_ms": result["p50_ms"],
                        "p99_ms": result["p99_ms"]})
        print(f"  soak {sent:>7} requests  RSS {result['rss_mb']} MB  {result['rps']:.0f} req/s"
              f"  errors {result['errors']}  [{time.monotonic() - started:.0f}s]",
              file=sys.stderr, flush=True)
    after_warmup = [s["rss_mb"] for s in samples[1:] if s["rss_mb"] is not None]
    growth = after_warmup[-1] - after_warmup[0] if len(after_warmup) > 1 else None
    return {"total": sent, "every": every, "concurrency": concurrency, "samples": samples,
            "growth_after_first_chunk_mb": None if growth is None else round(growth, 1),
            "peak_mb": max(after_warmup, default=None),
            "errors": sum(s["errors"] for s in samples),
            "seconds": round(time.monotonic() - started, 1)}


def soak_table(result: dict[str, Any]) -> str:
    lines = ["| requests | RSS MB | req/s | p50 ms | p99 ms | errors |",
             "|---|---|---|---|---|---|"]
    for s in result["samples"]:
        rps = "-" if s["rps"] is None else f"{s['rps']:.0f}"
        lines.append(f"| {s['requests']} | {s['rss_mb']} | {rps} | {s.get('p50_ms', '-')} "
                     f"| {s.get('p99_ms', '-')} | {s['errors']} |")
    lines.append("")
    lines.append(f"Growth after the first {result['every']} requests: "
                 f"{result['growth_after_first_chunk_mb']} MB; peak {result['peak_mb']} MB; "
                 f"{result['errors']} errors in {result['seconds']} s.")
    return "\n".join(lines)
