"""deploy/: Prometheus, Alertmanager, Grafana and the load balancer of the compose stack use
the shipped alert rules and dashboard and reach the gateways."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_files import DEPLOY, ROOT, mounts, prometheus, services


def test_prometheus_loads_the_shipped_alert_rules_and_scrapes_with_the_token():
    config = prometheus()
    files = mounts("prometheus")
    assert [files[path] for path in config["rule_files"]] == ["config/monitoring/alerts.yaml"]
    assert files["/etc/prometheus/prometheus.yml"] == "deploy/prometheus/prometheus.yml"
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "onyproxy"]
    secret = services()["prometheus"]["secrets"][0]
    assert job["authorization"]["credentials_file"] == f"/run/secrets/{secret}"
    (am,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am.split(":")[0] in services()
    assert set(services()["prometheus"]["networks"]) <= set(services()["gateway-1"]["networks"])


def test_grafana_is_provisioned_with_prometheus_and_the_shipped_dashboard():
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts("grafana")["/etc/grafana/provisioning"] == "deploy/grafana/provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert urlsplit(source["url"]).hostname == "prometheus"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "onyproxy.yaml").read_text())[
        "providers"]
    dashboards = {path: host for path, host in mounts("grafana").items()
                  if path.startswith(provider["options"]["path"] + "/")}
    assert list(dashboards.values()) == ["config/monitoring/grafana-dashboard.json"]
    dashboard = json.loads((ROOT / "config/monitoring/grafana-dashboard.json").read_text())
    assert {"type": "datasource", "query": "prometheus"}.items() <= dashboard["templating"][
        "list"][0].items()


def test_load_balancer_listens_where_compose_publishes_and_hides_metrics():
    text = (DEPLOY / "nginx.conf").read_text()
    listen = re.search(r"listen (\d+);", text).group(1)
    assert services()["lb"]["ports"] == [f"8080:{listen}"]
    assert "location = /metrics { return 404; }" in text
    assert "proxy_buffering off;" in text


def test_promtool_accepts_the_prometheus_config_with_the_mounted_rules(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; make test installs it)")
    # the config as Prometheus sees it in its container: container paths -> repository files
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    for target, source in mounts("prometheus").items():
        text = text.replace(target, str(ROOT / source))
    for secret in services()["prometheus"]["secrets"]:
        (tmp_path / secret).write_text("token")
        text = text.replace(f"/run/secrets/{secret}", str(tmp_path / secret))
    (tmp_path / "prometheus.yml").write_text(text)
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
