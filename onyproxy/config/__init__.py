"""Load, expand and validate the gateway's YAML configuration, once, at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from onyproxy.config.build import build
from onyproxy.config.defaults import shipped
from onyproxy.config.env import expand
from onyproxy.config.errors import ConfigError, Problems, join
from onyproxy.config.model import GatewayConfig, PluginSpec
from onyproxy.config.references import check_references

__all__ = ["ConfigError", "GatewayConfig", "config_path", "load_config", "parse_config"]

DEFAULT_PATH = "config/gateway.yaml"


def config_path(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """``--config`` wins, then ``ONYPROXY_CONFIG``, then ``config/gateway.yaml`` in the working
    directory, then the default shipped inside the package (mock provider, SQLite in ./data)."""
    env = os.environ if env is None else env
    chosen = explicit or env.get("ONYPROXY_CONFIG")
    if chosen:
        return chosen
    return DEFAULT_PATH if Path(DEFAULT_PATH).exists() else str(shipped("gateway.yaml"))


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and validate a config file; raise :class:`ConfigError` listing every problem."""
    env = os.environ if env is None else env
    source = config_path(path, env)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read the config file ({exc.strerror})"]) from None
    return parse_config(text, source, env)


def parse_config(text: str, source: str = "<memory>",
                 env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Validate config ``text``; ``source`` names it in error messages."""
    env = os.environ if env is None else env
    problems = Problems(source)
    raw = _parse_yaml(text, source)
    raw = expand(raw, env, problems)
    config = build(GatewayConfig, raw, problems)
    if config is None:
        problems.raise_if_any()
    plugins = _resolve_plugins(config, problems)
    check_references(config, problems)
    problems.raise_if_any()
    return replace(config, plugins=plugins, source=source)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{source}: {where}invalid YAML ({problem})"]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: expected a mapping at the top level"])
    return raw


def _resolve_plugins(config: GatewayConfig, problems: Problems) -> list[PluginSpec]:
    # Imported here: plugin discovery may import third-party code, which only loading needs.
    from onyproxy.plugin_loader import PluginNotFound, find_plugin

    specs: list[PluginSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(config.pipeline):
        path = join("pipeline", index)
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.add(path, "expected a mapping with a 'name' (e.g. {name: auth})")
            continue
        name = entry["name"]
        if name in seen:
            problems.add(join(path, "name"), f"plugin '{name}' appears twice in the pipeline")
        seen.add(name)
        try:
            plugin = find_plugin(name)
        except PluginNotFound as exc:
            problems.add(join(path, "name"), str(exc))
            continue
        options = {k: v for k, v in entry.items() if k != "name"}
        plugin_config = build(plugin.Config, options, problems, path)
        if plugin_config is not None:
            _check_plugin(plugin, plugin_config, config, path, problems)
            specs.append(PluginSpec(name=name, plugin=plugin, config=plugin_config))
    return specs


def _check_plugin(plugin: type, plugin_config: Any, config: GatewayConfig, path: str,
                  problems: Problems) -> None:
    """A plugin's checks that need the rest of the config (e.g. a backend that cannot work
    with several workers): ``check_config(plugin_config, config)`` yields (key, message)."""
    check = getattr(plugin, "check_config", None)
    if check is not None:
        for key, message in check(plugin_config, config):
            problems.add(join(path, key) if key else path, message)
