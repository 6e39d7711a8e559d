"""Config loading: every mistake names the file, the key path and what was expected."""

import os
import subprocess
import sys
import textwrap

import pytest

from onyproxy.config import ConfigError, load_config, parse_config
from onyproxy.config.defaults import shipped

GOOD = """
providers:
  openai: {type: openai, base_url: https://api.openai.com/v1, api_key: "${OPENAI_API_KEY}"}
  mock: {type: mock}
models:
  claude-sonnet:
    targets:
      - {provider: mock, model: m1}
      - {provider: openai, model: gpt-4o}
pipeline:
  - {name: routing, retries: 1}
"""


def problems(text: str, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), "gateway.yaml",
                     {"OPENAI_API_KEY": "k"} if env is None else env)
    return caught.value.problems


def test_valid_config_builds_typed_sections():
    config = parse_config(GOOD, "gateway.yaml", {"OPENAI_API_KEY": "sk-test"})
    assert config.providers["openai"].api_key == "sk-test"
    assert config.models["claude-sonnet"].targets[1].model == "gpt-4o"
    assert config.server.port == 8080 and config.storage.url.startswith("sqlite://")
    assert [spec.name for spec in config.plugins] == ["routing"]
    assert config.plugins[0].config.retries == 1


def test_unknown_provider_is_named_by_key_path():
    text = GOOD.replace("provider: openai, model: gpt-4o", "provider: anthropc, model: x")
    assert problems(text) == [
        "gateway.yaml: models.claude-sonnet.targets[1].provider: "
        "unknown provider 'anthropc' (known: mock, openai)"]


def test_unknown_key_is_an_error_not_ignored():
    found = problems(GOOD + "server: {port: 8080, prot: 1}\n")
    assert found == ["gateway.yaml: server.prot: unknown key (known keys: host, port, workers, "
                     "max_body_mb, tls, behind_https_proxy, header_timeout_s, body_timeout_s, "
                     "keepalive_timeout_s, max_connections, drain_s)"]


def test_wrong_type_says_what_was_expected():
    found = problems(GOOD + "server: {port: eighty}\n")
    assert found == ["gateway.yaml: server.port: expected an integer, got a string 'eighty'"]


def test_out_of_range_value():
    found = problems(GOOD + "server: {port: 70000}\n")
    assert found == ["gateway.yaml: server.port: expected a value from 1 to 65535, got 70000"]


def test_all_problems_are_reported_at_once():
    text = GOOD + "server: {port: 0, workers: many}\nretention: {usage_events_days: -1}\n"
    assert len(problems(text)) == 3


def test_missing_env_var_without_default_names_the_variable():
    found = problems(GOOD, env={})
    assert found == ["gateway.yaml: providers.openai.api_key: environment variable "
                     "${OPENAI_API_KEY} is not set and has no default "
                     "(write ${OPENAI_API_KEY:-default} to give one)"]


def test_env_default_and_typed_expansion():
    text = GOOD + "server: {port: '${PORT:-9090}', host: '${HOST:-0.0.0.0}'}\n"
    config = parse_config(text, "g.yaml", {"OPENAI_API_KEY": "k", "HOST": "127.0.0.2"})
    assert config.server.port == 9090 and config.server.host == "127.0.0.2"


def test_env_value_cannot_inject_yaml():
    env = {"OPENAI_API_KEY": "a\nmodels: {}"}
    config = parse_config(GOOD, "g.yaml", env)
    assert config.providers["openai"].api_key == "a\nmodels: {}"
    assert "claude-sonnet" in config.models


def test_plugin_options_are_validated_with_their_path():
    found = problems(GOOD.replace("{name: routing, retries: 1}", "{name: routing, retrys: 1}"))
    assert found[0].startswith("gateway.yaml: pipeline[0].retrys: unknown key")


def test_unknown_plugin():
    found = problems(GOOD.replace("{name: routing, retries: 1}", "{name: routng}"))
    assert found[0].startswith("gateway.yaml: pipeline[0].name: unknown plugin 'routng'")


def test_plugin_by_module_path():
    text = GOOD.replace("{name: routing, retries: 1}",
                        "{name: 'plugins.routing.plugin:RoutingPlugin'}")
    config = parse_config(text, "g.yaml", {"OPENAI_API_KEY": "k"})
    assert config.plugins[0].plugin.name == "routing"


def test_invalid_yaml_names_line():
    found = problems("server: {port: 80\nmodels: [")
    assert found[0].startswith("gateway.yaml: line ")


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(str(tmp_path / "missing.yaml"), env={})
    assert "missing.yaml: cannot read the config file" in caught.value.problems[0]


def test_path_from_environment(tmp_path):
    path = tmp_path / "from-env.yaml"
    path.write_text("providers: {m: {type: mock}}\n")
    config = load_config(env={"ONYPROXY_CONFIG": str(path)})
    assert config.source == str(path)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    return subprocess.run([sys.executable, "-m", "onyproxy", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_check_config_ok_on_default_config():
    result = run_cli("--config", str(shipped("gateway.yaml")), "check-config")
    assert (result.returncode, result.stdout.strip()) == (0, "ok")


def test_check_config_prints_key_path_and_exits_1(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(GOOD.replace("provider: openai,", "provider: anthropc,"))
    result = run_cli("--config", str(broken), "check-config")
    assert result.returncode == 1
    assert "models.claude-sonnet.targets[1].provider: unknown provider 'anthropc'" in \
        result.stderr
    assert "Traceback" not in result.stderr
