"""With ``server.workers: 2`` every scrape reports the totals of both workers."""

import glob
import os
import urllib.request

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from serve_process import GatewayProcess, post_json

pytestmark = pytest.mark.slow

CONFIG = {
    "server": {"workers": 2},
    "providers": {"mock": {"type": "mock"}},
    "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]}},
}
CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "count me"}]}
N = 40


def scrape(gateway: GatewayProcess) -> dict[str, float]:
    """``{sample name: sum over all label sets}``, over a fresh connection."""
    with urllib.request.urlopen(gateway.url("/metrics"), timeout=10) as resp:
        text = resp.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def requests_by_pid(metrics_dir: str) -> dict[int, float]:
    """Requests each worker counted, read from its own counter file."""
    counts = {}
    for path in glob.glob(os.path.join(metrics_dir, "counter_*.db")):
        pid = int(os.path.basename(path)[len("counter_"):-len(".db")])
        counts[pid] = sum(sample.value for metric in MultiProcessCollector.merge([path])
                          for sample in metric.samples
                          if sample.name == "onyproxy_requests_total")
    return counts


def send(gateway: GatewayProcess, n: int) -> None:
    # post_json opens a fresh connection per call, so SO_REUSEPORT spreads them over workers.
    statuses = [post_json(gateway.url("/v1/chat/completions"), CHAT)[0] for _ in range(n)]
    assert statuses == [200] * n


def test_every_scrape_sums_both_workers(tmp_path):
    # TMPDIR places the per-run metrics directory where the test can look into it.
    gateway = GatewayProcess(CONFIG, tmp_path, env={"TMPDIR": str(tmp_path)})
    try:
        gateway.wait_ready()
        send(gateway, N)
        for _ in range(8):  # whichever worker answers, it reports everything
            totals = scrape(gateway)
            assert totals["onyproxy_requests_total"] == N
            assert totals["onyproxy_request_duration_seconds_count"] == N
            assert totals["onyproxy_tokens_total"] > 0
        [metrics_dir] = glob.glob(str(tmp_path / "onyproxy-metrics-*"))
        served = requests_by_pid(metrics_dir)
        assert len([pid for pid, count in served.items() if count > 0]) == 2, served
        assert sum(served.values()) == N
    finally:
        assert gateway.stop() == 0
    assert "Traceback" not in gateway.log()
    assert glob.glob(str(tmp_path / "onyproxy-metrics-*")) == []  # removed at shutdown


def test_operator_directory_is_emptied_at_start(tmp_path):
    metrics_dir = tmp_path / "prom"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    first = GatewayProcess(CONFIG, tmp_path, env=env)
    try:
        first.wait_ready()
        send(first, 5)
        assert scrape(first)["onyproxy_requests_total"] == 5
    finally:
        assert first.stop() == 0
    assert glob.glob(str(metrics_dir / "counter_*.db"))  # the operator's directory is kept

    second = GatewayProcess(CONFIG, tmp_path, env=env)
    try:
        second.wait_ready()
        send(second, 3)
        assert scrape(second)["onyproxy_requests_total"] == 3  # not 8: old files were removed
    finally:
        assert second.stop() == 0
