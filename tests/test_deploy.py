"""deploy/: the Dockerfile, the compose stack and the gateway config agree with the code, with
setup.cfg and with README.md, checked without a Docker daemon (tests/test_deploy_kubernetes.py
covers deploy/kubernetes/)."""

from __future__ import annotations

import configparser
import ipaddress
import json
import re
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from deploy_files import (
    COMPOSE,
    DEPLOY,
    DRAIN_S,
    GATEWAY_YAML,
    GATEWAYS,
    ROOT,
    VAR,
    compose,
    dockerfile_stages,
    duration_s,
    env_example,
    gateway_env,
    instructions,
    load_deploy_config,
    nginx_upstreams,
    prometheus,
    services,
)
from serve_process import GatewayProcess

from onyproxy.cli import build_parser
from onyproxy.config import ConfigError

# --- every file parses ---------------------------------------------------------------------


def test_every_yaml_file_under_deploy_parses():
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert len(files) >= 10
    for path in files:
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs and all(isinstance(doc, dict) for doc in docs), path


# --- Dockerfile ----------------------------------------------------------------------------
def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def test_dockerfile_builds_the_wheel_and_installs_only_the_wheel():
    preamble, build, final = dockerfile_stages()
    cfg = setup_cfg()
    assert instructions(build, "FROM") == ["python:${PYTHON_VERSION}-slim AS build"]
    assert instructions(final, "FROM") == ["python:${PYTHON_VERSION}-slim"]
    # Python of the image >= python_requires
    (version,) = [a.split("=")[1] for a in instructions(preamble, "ARG") if a.startswith("PYTHON")]
    required = re.search(r">=\s*([\d.]+)", cfg["options"]["python_requires"]).group(1)
    assert tuple(map(int, version.split("."))) >= tuple(map(int, required.split(".")))
    # the builder gets what setup.cfg packages, and builds wheels of it
    copied = " ".join(instructions(build, "COPY"))
    packages = cfg["options.packages.find"]["include"].split()
    for needed in ["setup.cfg", "pyproject.toml", *[p for p in packages if "." not in p]]:
        assert re.search(rf"(^|\s){re.escape(needed)}(\s|$)", copied), needed
    long_description = cfg["metadata"]["long_description"].removeprefix("file:").strip()
    assert long_description in copied
    assert any(r.startswith("pip wheel") and "--wheel-dir /wheels ." in r
               for r in instructions(build, "RUN"))
    # the final stage installs the package by name from the wheels only, never the source
    name = cfg["metadata"]["name"]
    (install,) = [r for r in instructions(final, "RUN") if "pip install" in r]
    assert "--no-index" in install and "--find-links /wheels" in install
    assert install.split()[-1] == name and "from=build,source=/wheels" in install
    for source in instructions(final, "COPY"):
        assert not re.search(r"(^|\s)(onyproxy|plugins|\.)(/|\s|$)", source), source


def test_dockerfile_runs_the_console_script_on_the_mounted_config():
    final = dockerfile_stages()[-1]
    scripts = setup_cfg()["options.entry_points"]["console_scripts"]
    script = scripts.split("=")[0].strip()
    assert json.loads(instructions(final, "ENTRYPOINT")[0]) == [script]
    args = build_parser().parse_args(json.loads(instructions(final, "CMD")[0]))
    assert args.command == "serve"
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(instructions(final, "ENV"))))
    assert args.config == env["ONYPROXY_CONFIG"] == "/etc/onyproxy/gateway.yaml"
    assert env["ONYPROXY_HOST"] == "0.0.0.0"  # the default config listens to the outside
    # compose puts deploy/gateway.yaml exactly there
    for name in GATEWAYS:
        assert f"./gateway.yaml:{args.config}:ro" in services()[name]["volumes"]


def test_dockerfile_runs_as_a_non_root_user_with_config_and_data_volumes():
    final = dockerfile_stages()[-1]
    (user,) = instructions(final, "USER")
    assert int(user.split(":")[0]) > 0
    volumes = json.loads(instructions(final, "VOLUME")[0])
    assert volumes == ["/etc/onyproxy", "/var/lib/onyproxy"]
    assert instructions(final, "WORKDIR") == ["/var/lib/onyproxy"]  # ./data lands in a volume


def test_dockerfile_exposes_the_port_every_other_file_uses():
    (expose,) = instructions(dockerfile_stages()[-1], "EXPOSE")
    port = load_deploy_config(gateway_env("gateway-1")).server.port
    assert int(expose) == port
    targets = prometheus()["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"{name}:{port}" for name in GATEWAYS]
    assert nginx_upstreams() == [f"{name}:{port}" for name in GATEWAYS]


def test_dockerfile_copies_only_what_its_dockerignore_lets_in():
    allowed = {line[1:].rstrip("/") for line in
               (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
               if line.startswith("!")}
    for stage in dockerfile_stages()[1:]:
        for copy in instructions(stage, "COPY"):
            if "--from=" in copy:
                continue  # from another stage, not from the build context
            sources = [s for s in copy.split()[:-1] if not s.startswith("--")]
            for source in sources:
                assert source in allowed and (ROOT / source).exists(), source


def healthcheck_command(test: list[str]) -> list[str]:
    """``["CMD", "python", ...]`` run with this interpreter."""
    assert test[:2] == ["CMD", "python"], test
    return [sys.executable, *test[2:]]


@pytest.mark.slow
def test_the_healthchecks_pass_on_a_live_gateway_and_fail_on_a_dead_one(tmp_path):
    # The image's HEALTHCHECK and compose's, run as they are written (python -c, no curl).
    (health,) = instructions(dockerfile_stages()[-1], "HEALTHCHECK")
    image_check = healthcheck_command(["CMD", *json.loads(health.split(" CMD ", 1)[1])])
    compose_check = healthcheck_command(services()["gateway-1"]["healthcheck"]["test"])
    assert "curl" not in health
    gateway = GatewayProcess({"providers": {"mock": {"type": "mock"}}}, tmp_path)
    try:
        gateway.wait_ready()
        env = {"ONYPROXY_PORT": str(gateway.port)}
        assert subprocess.run(image_check, env=env, timeout=30).returncode == 0
        local = [part.replace("127.0.0.1:8080", f"127.0.0.1:{gateway.port}")
                 for part in compose_check]
        assert subprocess.run(local, timeout=30).returncode == 0
    finally:
        gateway.stop()
    assert subprocess.run(image_check, env=env, timeout=30,
                          stderr=subprocess.DEVNULL).returncode != 0


# --- the deploy gateway config -------------------------------------------------------------

def test_deploy_config_passes_the_gateways_own_validation():
    for name in GATEWAYS:
        config = load_deploy_config(gateway_env(name))
        assert config.server.host == "0.0.0.0" and config.server.workers >= 2
        assert config.metrics.token
        names = [spec.name for spec in config.plugins]
        assert names[:3] == ["auth", "security", "ratelimit"] and names[-1] == "metering"


@pytest.mark.parametrize("secret", ["ONYPROXY_KEY_PEPPER", "ONYPROXY_JWT_SECRET",
                                    "ONYPROXY_METRICS_TOKEN", "REDIS_PASSWORD"])
def test_deploy_config_refuses_to_start_without_each_secret(secret):
    env = gateway_env("gateway-1")
    del env[secret]
    with pytest.raises(ConfigError, match=re.escape(f"${{{secret}}} is not set")):
        load_deploy_config(env)
    # and compose refuses an empty one before anything starts (${VAR:?message})
    assert re.fullmatch(rf"\$\{{{secret}:\?.+\}}",
                        services()["gateway-1"]["environment"][secret])


def test_gateways_use_the_compose_services_for_mongodb_and_redis():
    mongo_command = services()["mongo"]["command"]
    replica_set = mongo_command[mongo_command.index("--replSet") + 1]
    init_script = services()["mongo-init"]["command"][-1]
    assert f'_id: "{replica_set}"' in init_script and 'host: "mongo:27017"' in init_script
    for name in GATEWAYS:
        config = load_deploy_config(gateway_env(name))
        storage = urlsplit(config.storage.url)
        assert (storage.scheme, storage.hostname, storage.port) == ("mongodb", "mongo", 27017)
        assert parse_qs(storage.query)["replicaSet"] == [replica_set]
        (ratelimit,) = [s.config for s in config.plugins if s.name == "ratelimit"]
        redis = urlsplit(ratelimit.url)
        assert ratelimit.backend == "redis" and redis.hostname in services()
        assert redis.password == gateway_env(name)["REDIS_PASSWORD"]


def test_gateways_trust_the_load_balancer_and_only_it():
    lb = services()["lb"]
    address = ipaddress.ip_address(lb["networks"]["edge"]["ipv4_address"])
    subnet = ipaddress.ip_network(compose()["networks"]["edge"]["ipam"]["config"][0]["subnet"])
    assert address in subnet
    for name in GATEWAYS:
        (auth,) = [s.config for s in load_deploy_config(gateway_env(name)).plugins
                   if s.name == "auth"]
        assert [ipaddress.ip_network(n) for n in auth.trusted_proxies] == [
            ipaddress.ip_network(f"{address}/32")]
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx


# --- compose: the service graph README.md describes ----------------------------------------

def readme_services() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running many gateways", 1)[1].split("\n## ", 1)[0]
    return [name for row in re.findall(r"^\| (`[^|]+`) \|", section, re.M)
            for name in re.findall(r"`([^`]+)`", row)]


def test_compose_services_are_the_ones_readme_lists():
    assert readme_services() == list(services())


def test_compose_dependencies_wait_for_healthy_or_finished_services():
    graph = {name: svc.get("depends_on", {}) for name, svc in services().items()}
    for name in GATEWAYS:
        assert graph[name] == {"mongo-init": {"condition": "service_completed_successfully"},
                               "redis": {"condition": "service_healthy"}}
    assert graph["mongo-init"] == {"mongo": {"condition": "service_healthy"}}
    assert graph["lb"] == {name: {"condition": "service_healthy"} for name in GATEWAYS}
    for name, deps in graph.items():
        for dep in deps:
            assert dep in services(), f"{name} depends on unknown {dep}"
            if isinstance(deps, dict) and deps[dep]["condition"] == "service_healthy":
                assert "healthcheck" in services()[dep], dep
    assert services()["mongo-init"]["restart"] == "no"


def test_every_long_running_service_has_a_healthcheck_and_restarts():
    for name, svc in services().items():
        if name != "mongo-init":
            assert svc["healthcheck"]["test"], name
            assert svc["restart"] == "unless-stopped", name


def test_gateways_get_longer_to_stop_than_the_drain():
    for name in GATEWAYS:
        assert duration_s(services()[name]["stop_grace_period"]) > DRAIN_S


def test_compose_volumes_are_declared_and_bind_mounts_exist():
    declared = set(compose()["volumes"])
    used = set()
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            else:
                used.add(source)
    assert used == declared
    # each gateway its own data volume: spools must not be shared
    data = [v for n in GATEWAYS for v in services()[n]["volumes"] if "/var/lib/onyproxy" in v]
    assert len(set(data)) == len(GATEWAYS)


def test_only_the_load_balancer_and_loopback_dashboards_are_published():
    published = {name: svc["ports"] for name, svc in services().items() if "ports" in svc}
    assert published.pop("lb") == ["8080:8080"]
    assert all(port.startswith("127.0.0.1:") for ports in published.values() for port in ports)
    assert compose()["networks"]["data"]["internal"] is True
    for name in ("mongo", "redis"):
        assert services()[name]["networks"] == ["data"]


def test_secrets_come_from_the_git_ignored_env_file():
    assert "/deploy/.env" in (ROOT / ".gitignore").read_text().splitlines()
    text = re.sub(r"(^|\s)#.*", "", COMPOSE.read_text() + GATEWAY_YAML.read_text())
    example = env_example()
    for match in VAR.finditer(text):
        name, operator = match.group(1), match.group(2)
        if operator in (None, ":?"):  # required: the user must be told to set it
            assert name in example, name
    for name in GATEWAYS:
        assert services()[name]["env_file"] == [".env"]
    assert all(not value for key, value in example.items()
               if re.search(r"PASSWORD|SECRET|TOKEN|PEPPER|API_KEY", key))
    for name, svc in services().items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|PEPPER", key):
                assert str(value).startswith("${"), f"{name}: {key} is written in the YAML"
    assert compose()["secrets"]["metrics_token"] == {"environment": "ONYPROXY_METRICS_TOKEN"}


# --- monitoring ----------------------------------------------------------------------------
