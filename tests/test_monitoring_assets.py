"""The Grafana dashboard and the alert rules in config/monitoring/ load and use real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from onyproxy.metrics import Metrics
from onyproxy.metrics.definitions import exposed_names
from plugins.metering.spool_metrics import spool_metrics

MONITORING = Path(__file__).resolve().parent.parent / "config" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
ALERTS = MONITORING / "alerts.yaml"
ALERT_TESTS = MONITORING / "alerts.test.yaml"

# Grafana's variables, replaced by values PromQL accepts, so dashboard queries can be checked.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h",
                     "$model": ".*", "$provider": ".*"}
_NOT_METRICS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                "group_right", "offset", "bool", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values may hold anything
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\s*(\()?", text):
        name, call = match.groups()
        if not call and name not in _NOT_METRICS:
            names.add(name)
    return names


def known_metrics() -> set[str]:
    """The core's families and those plugins register on the gateway's registry."""
    gateway = SimpleNamespace(config=SimpleNamespace(models={}))
    gateway.metrics = Metrics(gateway)
    spool_metrics(gateway)
    return exposed_names(gateway.metrics.registry)


def dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"]
            for target in panel.get("targets", [])]


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"]
            for rule in group["rules"]]


def test_metric_names_are_found_in_promql():
    assert metric_names('sum by (le) (rate(a_bucket{x="b_c", y=~"$v"}[5m])) / b_total '
                        'offset 1h and on (job) up') == {"a_bucket", "b_total", "up"}
    assert metric_names("histogram_quantile(0.9, sum(rate(c_bucket[1h:1m])))") == {"c_bucket"}


def test_dashboard_loads_and_references_only_existing_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"]
    exprs = dashboard_exprs()
    assert exprs
    known = known_metrics()
    for title, expr in exprs:
        unknown = metric_names(expr) - known
        assert not unknown, f"panel {title!r} uses unknown metrics {unknown}"
        if "histogram_quantile" in expr:
            assert all(name.endswith("_bucket") for name in metric_names(expr)), title


def test_dashboard_covers_what_operators_look_at():
    used = set().union(*(metric_names(expr) for _, expr in dashboard_exprs()))
    for name in ("onyproxy_requests_total", "onyproxy_request_duration_seconds_bucket",
                 "onyproxy_time_to_first_token_seconds_bucket", "onyproxy_tokens_total",
                 "onyproxy_cost_usd_total", "onyproxy_ratelimited_total",
                 "onyproxy_auth_failures_total", "onyproxy_upstream_duration_seconds_bucket",
                 "onyproxy_circuit_state", "onyproxy_spool_depth"):
        assert name in used, name
    titles = " ".join(title.lower() for title, _ in dashboard_exprs())
    for topic in ("percentiles", "first token", "by provider", "cost", "auth failures",
                  "rate-limited"):
        assert topic in titles, topic


def test_panel_ids_are_unique():
    ids = [panel["id"] for panel in json.loads(DASHBOARD.read_text())["panels"]]
    assert len(ids) == len(set(ids))


def test_alert_rules_have_required_fields_and_existing_metrics():
    rules = alert_rules()
    assert rules
    known = known_metrics()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["alert"].startswith("Onyproxy")
        assert rule["expr"].strip()
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"]
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule['alert']} uses unknown metrics {unknown}"


def test_alerts_cover_the_promised_conditions():
    used = set().union(*(metric_names(rule["expr"]) for rule in alert_rules()))
    for name in ("onyproxy_requests_total", "onyproxy_request_duration_seconds_bucket",
                 "onyproxy_circuit_state", "onyproxy_auth_failures_total",
                 "onyproxy_ratelimited_total", "onyproxy_spool_depth",
                 "onyproxy_spool_write_errors_total", "onyproxy_spool_memory_backlog",
                 "onyproxy_usage_records_lost_total", "onyproxy_audit_head_seq"):
        assert name in used, name


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; make test installs it)")
    return path


def run(*args: str, cwd: Path = MONITORING) -> None:
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_checks_the_rules():
    run(promtool(), "check", "rules", str(ALERTS))


def test_promtool_unit_tests_say_the_alerts_fire_when_they_should():
    run(promtool(), "test", "rules", ALERT_TESTS.name)


def test_promtool_parses_every_dashboard_query(tmp_path):
    tool = promtool()
    rules = []
    for index, (_, expr) in enumerate(dashboard_exprs()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"onyproxy:dashboard_query_{index}", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run(tool, "check", "rules", str(path), cwd=tmp_path)
