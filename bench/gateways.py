"""The targets of a run: how each one is started and how the load generator calls it.

``direct`` is the fake upstream itself, ``bare`` the minimal proxy of :mod:`bench.bare`, and
every ``onyproxy`` target a real ``onyproxy serve`` (or, for the hot-path variants, the same CLI
through :mod:`bench.serve`) with a temporary config on SQLite in its own directory.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import PYTHON, Child, free_port

# The standard pipeline of DESIGN.md §2, in order, with options that keep the plugins from
# limiting a load test (a rate limit of 600 rpm would turn the bench into a 429 test).
STANDARD = ["auth", "ratelimit", "redaction", "routing", "metering"]
OPTIONS: dict[str, dict[str, Any]] = {
    "ratelimit": {"backend": "memory",
                  "defaults": {"rpm": 100_000_000, "tpm": 100_000_000_000,
                               "concurrent": 100_000}},
    "routing": {"retries": 2, "timeout_s": 600},
}
MODEL = "gpt-bench"
CHAT = "/v1/chat/completions"


@dataclass
class GatewaySpec:
    """How one onyproxy target is configured and launched."""

    pipeline: str = "full"  # "empty" | "full"
    workers: int = 1
    access_log: bool = True
    uvloop: bool = True
    orjson: bool = True
    profile: str | None = None  # write a cProfile of the event loop thread here
    tree: str | None = None  # run the onyproxy and plugins found in this source tree (A/B)
    redis_url: str | None = None  # ratelimit on Redis (needed with workers > 1)
    without: tuple[str, ...] = ()  # plugins left out of the full pipeline

    @property
    def launcher(self) -> bool:
        """Whether the plain ``onyproxy`` command can run it (else :mod:`bench.serve`)."""
        return self.uvloop and self.orjson and self.profile is None and self.tree is None


@dataclass
class Target:
    """Something the load generator can call: its URL, headers, and the process to measure."""

    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    child: Child | None = None  # the process whose RSS is reported (None for ``direct``)
    cores: str | None = None
    notes: str = ""

    def rss_mb(self) -> float | None:
        return self.child.rss_mb() if self.child else None

    def stop(self) -> None:
        if self.child:
            self.child.stop()


def available_plugins() -> list[str]:
    """The first-party plugins in ``plugins/`` that load right now (others may be half-built)."""
    from onyproxy.plugin_loader import find_plugin, first_party

    loadable = []
    for name in first_party():
        try:
            find_plugin(name)
        except Exception:  # a plugin being written may not import yet
            continue
        loadable.append(name)
    return loadable


def full_pipeline() -> tuple[list[str], list[str]]:
    """(the standard plugins present, the standard plugins still missing)."""
    present = set(available_plugins())
    return [p for p in STANDARD if p in present], [p for p in STANDARD if p not in present]


def gateway_config(spec: GatewaySpec, port: int, upstream: str, workdir: Path) -> dict[str, Any]:
    names = [n for n in full_pipeline()[0] if n not in spec.without] \
        if spec.pipeline == "full" else []
    options = dict(OPTIONS)
    if spec.redis_url:
        options["ratelimit"] = {**OPTIONS["ratelimit"], "backend": "redis",
                                "url": spec.redis_url}
    return {
        "server": {"host": "127.0.0.1", "port": port, "workers": spec.workers},
        "storage": {"url": f"sqlite:///{workdir}/onyproxy.db"},
        "security": {"key_pepper": "bench-pepper-not-a-secret-0123456789abcdef",
                     "jwt_secret": "bench-jwt-not-a-secret-0123456789abcdef"},
        "providers": {"up": {"type": "openai", "base_url": upstream + "/v1",
                             "api_key": "sk-bench-upstream"}},
        "models": {MODEL: {"targets": [{"provider": "up", "model": "gpt-4o-mini"}]}},
        "pipeline": [{"name": name, **options.get(name, {})} for name in names],
        "logging": {"level": "info", "access_log": spec.access_log},
    }


def onyproxy_command(spec: GatewaySpec, config: Path) -> list[str]:
    if spec.launcher:
        return [str(Path(PYTHON).parent / "onyproxy"), "--config", str(config), "serve"]
    cmd = [PYTHON, "-m", "bench.serve"]
    if not spec.uvloop:
        cmd.append("--no-uvloop")
    if not spec.orjson:
        cmd.append("--no-orjson")
    if spec.profile:
        cmd += ["--profile", spec.profile]
    return [*cmd, "--", "--config", str(config), "serve"]


def start_gateway(name: str, spec: GatewaySpec, upstream: str, workdir: Path,
                  cores: str | None) -> Target:
    """Write the config, issue an API key when ``auth`` is in the pipeline, start, wait."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "gateway.yaml"
    raw = gateway_config(spec, port, upstream, workdir)
    config.write_text(json.dumps(raw, indent=2))  # JSON is YAML
    headers, key_note = {}, ""
    if any(entry["name"] == "auth" for entry in raw["pipeline"]):
        secret, how = issue_key(config, raw)
        headers["authorization"] = f"Bearer {secret}"
        key_note = f"; key from {how}"
    child = Child(name, onyproxy_command(spec, config), workdir / "gateway.log", cores,
                  cwd=spec.tree)
    base = f"http://127.0.0.1:{port}"
    child.wait_http(base + "/healthz")
    notes = f"pipeline: {', '.join(e['name'] for e in raw['pipeline']) or '(empty)'}{key_note}"
    return Target(name, base + CHAT, headers, child, cores, notes)


def issue_key(config: Path, raw: dict[str, Any]) -> tuple[str, str]:
    """(a key for a bench account, how it was made): ``onyproxy keys create --json`` when the
    CLI has it, else the same functions the CLI calls (``onyproxy.accounts``/``keys``)."""
    from onyproxy.cli import COMMANDS

    if "keys" in COMMANDS and "accounts" in COMMANDS:
        cli = str(Path(PYTHON).parent / "onyproxy")

        def call(*args: str) -> dict[str, Any]:
            done = subprocess.run([cli, "--config", str(config), *args], capture_output=True,
                                  text=True, timeout=60, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"onyproxy {' '.join(args)} failed:\n{done.stderr[-2000:]}")
            return json.loads(done.stdout)

        account = call("accounts", "create", "--email", "bench@example.com", "--name",
                       "Bench Load", "--json")
        key = call("keys", "create", "--account", account.get("id") or account["account_id"],
                   "--name", "bench", "--json")
        return key.get("secret") or key["key"], "onyproxy keys create --json"
    return asyncio.run(_issue_key_in_process(raw)), "onyproxy.keys.create_key (no CLI yet)"


async def _issue_key_in_process(raw: dict[str, Any]) -> str:
    from onyproxy.accounts import create_account
    from onyproxy.keys import create_key
    from onyproxy.storage import open_store

    store = await open_store(raw["storage"]["url"])
    try:
        account = await create_account(store, email="bench@example.com", name="Bench Load")
        issued = await create_key(store, account.id, pepper=raw["security"]["key_pepper"],
                                  name="bench")
        return issued.secret
    finally:
        await store.close()


def start_upstream(workdir: Path, cores: str | None) -> tuple[Child, str]:
    """The fake upstream process and its base URL."""
    child = Child("upstream", [PYTHON, "-m", "bench.upstream"], workdir / "upstream.log", cores)
    port = child.wait_port_line()
    base = f"http://127.0.0.1:{port}"
    child.wait_http(base + "/healthz")
    return child, base


def direct(upstream: str) -> Target:
    return Target("direct", upstream + CHAT, {"authorization": "Bearer sk-bench-direct"},
                  notes="the fake upstream, no proxy")


def start_bare(upstream: str, workdir: Path, cores: str | None) -> Target:
    child = Child("bare", [PYTHON, "-m", "bench.bare", "--upstream", upstream],
                  workdir / "bare.log", cores)
    port = child.wait_port_line()
    base = f"http://127.0.0.1:{port}"
    child.wait_http(base + "/healthz")
    return Target("bare", base + CHAT, {"authorization": "Bearer sk-bench-bare"}, child, cores,
                  "minimal aiohttp reverse proxy (bench/bare.py)")


def start_redis(workdir: Path) -> tuple[Child, str] | None:
    """A throwaway ``redis-server`` on loopback (no persistence), if one is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    child = Child("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", str(workdir)],
                  workdir / "redis.log")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if "Ready to accept connections" in child.log.read_text(errors="replace"):
            return child, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    child.stop()
    raise RuntimeError(f"redis-server did not start:\n{child.tail()}")


def base_url(target: Target) -> str:
    return target.url.removesuffix(CHAT)
