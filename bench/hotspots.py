"""Profile the full pipeline under load: cProfile on the gateway's event loop thread.

The gateway runs through :mod:`bench.serve` ``--profile``; the load generator drives JSON and
stream requests at it; on SIGTERM the gateway writes its stats, summarised here by own time
(``tottime``) and by cumulative time, with paths shortened to the package.
"""

from __future__ import annotations

import io
import pstats
import re
from pathlib import Path
from typing import Any

from bench.gateways import GatewaySpec, start_gateway
from bench.matrix import Limits, Scenario, measure

_SITE = re.compile(r".*/(site-packages|lib/python3\.\d+)/")


def profile_gateway(upstream: str, workdir: Path, cores: str | None, load_cores: str | None,
                    seconds: float, pipeline: str = "full",
                    modes: tuple[str, ...] = ("json", "stream"),
                    top: int = 30) -> dict[str, Any]:
    stats_file = workdir / "gateway.prof"
    spec = GatewaySpec(pipeline=pipeline, profile=str(stats_file))
    target = start_gateway(f"{pipeline} (cProfile)", spec, upstream, workdir / "profile", cores)
    runs = []
    try:
        for scenario in [Scenario(mode, 16) for mode in modes]:
            runs.append(measure(target, scenario, Limits(duration_s=seconds, warmup_s=0.5),
                                load_cores))
    finally:
        target.stop()
    stats = pstats.Stats(str(stats_file))
    requests = sum(r["sent"] for r in runs)
    return {"requests": requests, "runs": runs, "pipeline": pipeline, "modes": list(modes),
            "stats_file": str(stats_file),
            "by_tottime": _top(stats, "tottime", top),
            "by_cumtime": _top(stats, "cumulative", top),
            "text": _text(stats, top)}


def _top(stats: pstats.Stats, key: str, count: int) -> list[dict[str, Any]]:
    rows = []
    entries = stats.stats  # type: ignore[attr-defined]
    field = 2 if key == "tottime" else 3
    for func, values in sorted(entries.items(), key=lambda kv: kv[1][field], reverse=True):
        calls, _, tottime, cumtime, _ = values
        rows.append({"function": _name(func), "calls": calls, "tottime_s": round(tottime, 3),
                     "cumtime_s": round(cumtime, 3)})
        if len(rows) == count:
            break
    return rows


def _name(func: tuple[str, int, str]) -> str:
    path, line, name = func
    return f"{_SITE.sub('', path)}:{line}({name})" if path != "~" else name


def _text(stats: pstats.Stats, count: int) -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(count)
    stats.sort_stats("cumulative").print_stats(count)
    return out.getvalue()


def profile_table(rows: list[dict[str, Any]], requests: int) -> str:
    lines = ["| function | calls | own s | cumulative s | own µs / request |",
             "|---|---|---|---|---|"]
    for row in rows:
        per = row["tottime_s"] / requests * 1e6 if requests else 0
        lines.append(f"| `{row['function']}` | {row['calls']} | {row['tottime_s']} "
                     f"| {row['cumtime_s']} | {per:.1f} |")
    return "\n".join(lines)
