"""The package runs the way it ships: built as a wheel, installed with pip into a fresh
virtualenv and started from an empty folder, with metering (which needs the model catalog),
the dashboard (templates and static files) and the packaged default config.

The fresh venv gets the wheel alone (``--no-deps``, offline); its dependencies come from this
test run's environment through a path entry, which (unlike a site directory) does not run the
checkout's editable-install hook, so nothing of the source tree is importable in it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest
from serve_process import GatewayProcess, post_json

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = shutil.ignore_patterns(".git", ".venv", "build", "dist", "data", "*.egg-info",
                                  "__pycache__", ".pytest_cache", ".ruff_cache", "tests", "bench")
PIPELINE = [{"name": "auth"}, {"name": "ratelimit", "backend": "memory"}, {"name": "redaction"},
            {"name": "routing", "retries": 0, "timeout_s": 10}, {"name": "metering"}]
CONFIG = {
    "providers": {"mock": {"type": "mock"}},
    "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]}},
    "security": {"key_pepper": "wheel-test-pepper-0123456789abcdef"},
    "pipeline": PIPELINE,
}


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "ONYPROXY_CONFIG": ""})
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def build_wheel(tmp: Path) -> Path:
    # From a copy, so the build leaves nothing (build/, egg-info) in the checkout.
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=LEFT_OUT)
    out = tmp / "wheels"
    offline = ["--no-build-isolation"] if _can_build_here() else []
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *offline, "-w", out,
        source, cwd=tmp)
    (wheel,) = out.glob("onyproxy-*.whl")
    return wheel


def _can_build_here() -> bool:
    """setuptools able to make wheels is installed (>= 70.1, or older with ``wheel``); else
    pip fetches the build requirements into an isolated environment."""
    import importlib.util
    return any(importlib.util.find_spec(name) is not None
               for name in ("setuptools.command.bdist_wheel", "wheel"))


def install(wheel: Path, tmp: Path) -> Path:
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel, cwd=tmp)
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
               cwd=tmp).strip()
    Path(site, "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    return install(build_wheel(tmp), tmp)


@pytest.mark.slow
def test_the_installed_package_is_not_the_checkout(installed, tmp_path):
    where = run(installed / "python", "-c", "import onyproxy, plugins; "
                "print(onyproxy.__file__); print(plugins.__file__)", cwd=tmp_path)
    assert str(ROOT) not in where and str(installed.parent) in where


@pytest.mark.slow
def test_check_config_from_an_empty_folder_uses_the_packaged_default(installed, tmp_path):
    assert run(installed / "onyproxy", "check-config", cwd=tmp_path).strip() == "ok"
    listing = json.loads(run(installed / "onyproxy", "models", "list", "--json", cwd=tmp_path))
    # Served models with what only the shipped catalog knows (context windows).
    assert {"mock-small", "mock-large"} <= {m["name"] for m in listing["data"]}
    assert all(m["context_window"] for m in listing["data"])


@pytest.mark.slow
def test_installed_gateway_serves_and_meters_a_call_from_an_empty_folder(installed, tmp_path):
    gateway = GatewayProcess(CONFIG, tmp_path, config_after_command=True,
                             program=[str(installed / "onyproxy")])
    try:
        gateway.wait_ready()
        onyproxy = [installed / "onyproxy", "--config", gateway.config_path]
        key = run(*onyproxy, "quickstart", cwd=tmp_path).strip()
        chat = {"model": "mock-small", "messages": [{"role": "user", "content": "ping"}]}
        status, body, _ = post_json(gateway.url("/v1/chat/completions"), chat,
                                    {"authorization": f"Bearer {key}"})
        assert status == 200, body
        for page in ("/ui/signin", "/ui/static/dashboard.css"):
            with urllib.request.urlopen(gateway.url(page), timeout=10) as resp:
                assert resp.status == 200
    finally:
        assert gateway.stop() == 0, gateway.log()
    # Metering wrote the usage event (at the latest when the gateway stopped).
    report = json.loads(run(*onyproxy, "usage", "report", "--by", "model", "--json",
                            cwd=tmp_path))
    (row,) = [r for r in report["rows"] if r["model"] == "mock-small"]
    assert row["requests"] == 1 and row["prompt_tokens"] > 0
