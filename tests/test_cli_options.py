"""The command line as people type it: ``--config`` before or after the subcommand, and a
listing piped into ``head`` that ends quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from serve_process import GatewayProcess

CONFIG = {
    "providers": {"mock": {"type": "mock"}},
    "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]}},
}


def onyproxy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "onyproxy", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ONYPROXY_CONFIG": ""})


def write_config(tmp_path: Path, **extra) -> Path:
    path = tmp_path / "mine.yaml"
    raw = {**CONFIG, "storage": {"url": f"sqlite:///{tmp_path}/data/onyproxy.db"}, **extra}
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("command", [["check-config"], ["accounts", "list"],
                                     ["keys", "list", "--account", "nobody@example.com"],
                                     ["audit", "verify"], ["models", "list"]])
@pytest.mark.parametrize("after", [True, False])
def test_config_option_works_before_and_after_the_subcommand(tmp_path, command, after):
    broken = tmp_path / "broken.yaml"
    broken.write_text("providers: {mock: {type: mokc}}\n")
    args = [*command, "--config", str(broken)] if after else ["--config", str(broken), *command]
    done = onyproxy(*args, cwd=tmp_path)
    # The named file was read: its own mistake is reported, with its name.
    assert done.returncode == 1, done.stderr
    assert "broken.yaml: providers.mock.type" in done.stderr, done.stderr


def test_the_option_after_the_subcommand_wins(tmp_path):
    good = write_config(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("providers: {mock: {type: mokc}}\n")
    done = onyproxy("--config", str(broken), "check-config", "--config", str(good),
                    cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


@pytest.mark.slow
def test_serve_with_config_after_the_subcommand(tmp_path):
    gateway = GatewayProcess(CONFIG, tmp_path, config_after_command=True)
    try:
        gateway.wait_ready()
    finally:
        gateway.stop()
    assert "listening on http://" in gateway.log()


def test_a_listing_piped_into_head_ends_quietly(tmp_path):
    # A catalog far larger than a pipe's buffer: the listing is still writing when head exits.
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": {
        f"model-{i:05d}": {"provider": "openai", "price": {"input": 1.0, "output": 2.0}}
        for i in range(6000)}}))
    config = write_config(tmp_path, catalog=str(catalog))
    for listing in ("models list", "models list --json"):
        done = subprocess.run(
            f"{sys.executable} -m onyproxy --config {config} {listing} | head -n 1",
            shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0
        assert done.stdout.count("\n") == 1 and done.stdout.strip()
        assert done.stderr == "", done.stderr
