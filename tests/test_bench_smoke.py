"""``python -m bench`` (issue 10) runs end to end: a short benchmark of every target and a
short soak, as ``make bench`` and ``make soak`` run them, with nothing timed here. The numbers
themselves are for bench/RESULTS.md; this checks the machinery that produces them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def run_bench(*args: str) -> tuple[str, dict]:
    done = subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=True)
    saved = Path(done.stdout.strip().splitlines()[-1].removeprefix("JSON: "))
    try:
        return done.stdout, json.loads(saved.read_text())
    finally:
        saved.unlink()


def test_every_target_is_measured_with_latency_ttfb_cpu_and_memory():
    out, report = run_bench("--targets", "direct,bare,empty,full", "--concurrency", "1",
                            "--modes", "json,stream", "--runs", "1", "--duration", "0.6",
                            "--warmup", "0.1", "--no-variants", "--no-workers")
    assert report["missing_plugins"] == []
    assert report["full_pipeline"] == ["auth", "ratelimit", "redaction", "routing", "metering"]
    cells = {(c["target"], c["scenario"]): c for c in report["cells"]}
    assert set(cells) == {(t, s) for t in ("direct", "bare", "empty", "full")
                          for s in ("json c1", "stream c1")}
    for (target, scenario), cell in cells.items():
        assert cell["errors"] == 0 and cell["measured"] > 0, (target, scenario, cell)
        assert 0 < cell["p50_ms"] <= cell["p90_ms"] <= cell["p99_ms"]
        assert (cell["ttfb_p50_ms"] is not None) == scenario.startswith("stream")
        if target != "direct":  # the proxies are processes of their own, measured
            assert cell["rss_mb"] > 0 and cell["cpu_us"] > 0
    assert "| json c1 | full |" in out and "| stream c1 | bare |" in out  # the Markdown table
    assert "full p50 overhead over direct, json c1:" in out


def test_the_soak_samples_memory_at_every_step():
    out, report = run_bench("--soak", "--soak-requests", "600", "--soak-every", "200",
                            "--soak-concurrency", "4")
    soak = report["soak"]
    assert soak["total"] == 600 and soak["errors"] == 0
    assert [s["requests"] for s in soak["samples"]] == [0, 200, 400, 600]
    assert all(s["rss_mb"] > 0 for s in soak["samples"])
    assert "| requests | RSS MB |" in out and "Growth after the first 200 requests" in out
