"""Turn medians into Markdown tables and target checks, and save everything as JSON."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"
Cells = dict[tuple[str, str], dict[str, Any]]


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def main_table(cells: Cells, targets: list[str], scenarios: list[str]) -> str:
    """One row per (scenario, target): throughput and latency, against ``bare`` and ``direct``."""
    head = ("| scenario | target | req/s | x bare | p50 ms | p90 ms | p99 ms | p50 over direct"
            " | TTFB p50 | TTFB over direct | CPU µs/req | errors | RSS MB |")
    lines = [head, "|" + "---|" * 13]
    for scenario in scenarios:
        bare = cells.get(("bare", scenario), {})
        direct = cells.get(("direct", scenario), {})
        for target in targets:
            cell = cells.get((target, scenario))
            if cell is None:
                continue
            ratio = cell["rps"] / bare["rps"] if bare.get("rps") else None
            over = _diff(cell, direct, "p50_ms") if target != "direct" else None
            ttfb_over = _diff(cell, direct, "ttfb_p50_ms") if target != "direct" else None
            lines.append(
                f"| {scenario} | {target} | {cell['rps']:.0f} | {_fmt(ratio)} "
                f"| {_fmt(cell['p50_ms'])} | {_fmt(cell['p90_ms'])} | {_fmt(cell['p99_ms'])} "
                f"| {_signed(over)} | {_fmt(cell.get('ttfb_p50_ms'))} | {_signed(ttfb_over)} "
                f"| {_fmt(cell.get('cpu_us'), 0)} | {cell['errors']} "
                f"| {_fmt(cell.get('rss_mb'), 1)} |")
    return "\n".join(lines)


def variant_table(cells: Cells, reference: str, variants: list[str],
                  scenarios: list[str]) -> str:
    """Each hot-path variant against ``reference`` measured in the same runs."""
    lines = ["| scenario | variant | req/s | vs " + reference + " | p50 ms | p50 Δ ms "
             "| TTFB p50 | CPU µs/req | RSS MB |", "|" + "---|" * 9]
    for scenario in scenarios:
        ref = cells.get((reference, scenario))
        for name in [reference, *variants]:
            cell = cells.get((name, scenario))
            if cell is None or ref is None:
                continue
            ratio = cell["rps"] / ref["rps"] if ref["rps"] else None
            delta = None if name == reference else _diff(cell, ref, "p50_ms")
            lines.append(f"| {scenario} | {name} | {cell['rps']:.0f} | {_fmt(ratio)} "
                         f"| {_fmt(cell['p50_ms'])} | {_signed(delta)} "
                         f"| {_fmt(cell.get('ttfb_p50_ms'))} | {_fmt(cell.get('cpu_us'), 0)} "
                         f"| {_fmt(cell.get('rss_mb'), 1)} |")
    return "\n".join(lines)


def _diff(cell: dict[str, Any], base: dict[str, Any], metric: str) -> float | None:
    if cell.get(metric) is None or base.get(metric) is None:
        return None
    return cell[metric] - base[metric]


def check(name: str, value: float | None, limit: float, better: str, unit: str = "") -> dict:
    """One target: ``better`` is "low" (value ≤ limit) or "high" (value ≥ limit)."""
    if value is None:
        return {"target": name, "value": None, "limit": limit, "met": None,
                "text": f"{name}: not measured"}
    met = value <= limit if better == "low" else value >= limit
    sign = "≤" if better == "low" else "≥"
    return {"target": name, "value": round(value, 3), "limit": limit, "met": met,
            "text": f"{name}: {value:.2f}{unit} (target {sign} {limit:g}{unit}) — "
                    f"{'met' if met else 'NOT met'}"}


def target_checks(cells: Cells) -> list[dict[str, Any]]:
    """The issue's targets, from the main cells."""
    def get(target: str, scenario: str, metric: str) -> float | None:
        return cells.get((target, scenario), {}).get(metric)

    def over(metric: str, scenario: str) -> float | None:
        full, base = get("full", scenario, metric), get("direct", scenario, metric)
        return None if full is None or base is None else full - base

    def ratio(target: str, scenario: str) -> float | None:
        value, bare = get(target, scenario, "rps"), get("bare", scenario, "rps")
        return None if value is None or not bare else value / bare

    def by_cpu(target: str, scenario: str) -> str:
        value, bare = get(target, scenario, "cpu_us"), get("bare", scenario, "cpu_us")
        if not value or not bare:
            return ""
        return f"; bare's CPU time per request ÷ {target}'s: {bare / value:.2f}x"

    rss = [c["rss_mb"] for (t, _), c in cells.items()
           if t in ("empty", "full") and c.get("rss_mb") is not None]
    checks = [
        check("full p50 overhead over direct, json c1", over("p50_ms", "json c1"), 1.0, "low",
              " ms"),
        check("full TTFB overhead over direct, stream c1", over("ttfb_p50_ms", "stream c1"), 1.0,
              "low", " ms"),
    ]
    for target, limit in (("full", 0.7), ("empty", 0.9)):
        for scenario in ("json c64", "stream c64"):
            item = check(f"{target} req/s ÷ bare, {scenario}", ratio(target, scenario), limit,
                         "high", "x")
            item["text"] += by_cpu(target, scenario)
            checks.append(item)
    return [
        *checks,
        check("gateway RSS (largest cell, one worker)", max(rss) if rss else None, 80, "low",
              " MB"),
    ]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import aiohttp

    info: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                            "aiohttp": aiohttp.__version__, "platform": platform.platform()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    for module in ("uvloop", "orjson"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = os.getloadavg()
    return info


def save(report: dict[str, Any], kind: str = "bench") -> Path:
    """Write ``report`` to ``bench/results/<kind>-<time>.json`` (gitignored)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1, default=str))
    return path


def keyed(cells: Cells) -> list[dict[str, Any]]:
    """Cells as a JSON-friendly list."""
    return [{"target": t, "scenario": s, **cell} for (t, s), cell in cells.items()]
