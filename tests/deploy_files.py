"""What the files in deploy/ say, read for the tests (test_deploy*.py): the compose services,
the environment compose gives a gateway, the Dockerfile's instructions, the mounts."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from onyproxy.config import GatewayConfig, load_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
GATEWAY_YAML = DEPLOY / "gateway.yaml"
GATEWAYS = ["gateway-1", "gateway-2"]
# server.drain_s's default: the longest SIGTERM lets calls in flight finish.
DRAIN_S = 30
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?([^}]*)\}")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict:
    return compose()["services"]


def env_example() -> dict[str, str]:
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def filled_env() -> dict[str, str]:
    """deploy/.env as a user fills it: every empty secret given a value."""
    return {name: value or f"secret-{name.lower()}" for name, value in env_example().items()}


def gateway_env(service: str) -> dict[str, str]:
    """The environment compose gives a gateway container: .env, then `environment:` with
    compose's ${VAR} interpolation (from the same .env) applied."""
    env = filled_env()
    for name, value in services()[service]["environment"].items():
        env[name] = VAR.sub(lambda m: env[m.group(1)], str(value))
    return env


def load_deploy_config(env: dict[str, str]) -> GatewayConfig:
    return load_config(str(GATEWAY_YAML), env)


def duration_s(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smh])", text))


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, continuation lines joined, split into stages."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), rest.strip()))
    return stages


def instructions(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for key, rest in stage if key == keyword]


def prometheus() -> dict:
    return yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())


def nginx_upstreams() -> list[str]:
    text = (DEPLOY / "nginx.conf").read_text()
    block = re.search(r"upstream gateways \{(.*?)\}", text, re.S).group(1)
    return re.findall(r"^\s*server (\S+)", block, re.M)


def mounts(service: str) -> dict[str, str]:
    """container path -> host path (relative to the repository root)."""
    pairs = [v.split(":")[:2] for v in services()[service]["volumes"]]
    return {target: str((DEPLOY / source).resolve().relative_to(ROOT))
            for source, target in pairs if source.startswith(".")}
