"""The model catalog (``onyproxy/defaults/models.yaml``): what known models cost and can do.

Loaded once, at start, into frozen dataclasses and validated like the gateway config (file, key
path, what was expected). ``catalog:`` in gateway.yaml names the file; without it the gateway
uses ``config/models.yaml`` in the working directory, else the one shipped inside the package
(package data, so an installed wheel finds it from any folder).

Prices are :class:`~decimal.Decimal` US dollars per 1M tokens, never floats. A target's own
``price`` (in gateway.yaml) overrides the catalog field by field; see :func:`target_price`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

import yaml

from onyproxy.config.build import build, convert
from onyproxy.config.defaults import shipped
from onyproxy.config.errors import ConfigError, Problems
from onyproxy.config.model import GatewayConfig, PriceConfig, TargetConfig
from onyproxy.provider_features import FEATURES

DEFAULT_PATH = Path("config/models.yaml")
SHIPPED_PATH = shipped("models.yaml")
_PROVIDER_TYPES = ("openai", "anthropic", "gemini", "mock")
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


def _non_negative(value: Decimal | int) -> str | None:
    return None if value >= 0 else f"expected zero or more, got {value}"


@dataclass(frozen=True)
class ModelInfo:
    """One known model."""

    provider: Literal["openai", "anthropic", "gemini", "mock"]
    price: PriceConfig = field(metadata={"doc": "USD per 1M tokens: input, cached_input, output"})
    context_window: int | None = field(default=None, metadata={"check": _non_negative})
    max_output: int | None = field(default=None, metadata={"check": _non_negative})
    modalities: list[str] = field(default_factory=lambda: ["text"])
    tools: bool = False
    description: str = ""
    region: str | None = None
    aliases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Price:
    """A complete price: USD per 1M input, cached input and output tokens, and USD per use of
    each provider-run tool billed per use (``{"web_search": Decimal("0.01")}``)."""

    input: Decimal
    cached_input: Decimal
    output: Decimal
    per_use: dict[str, Decimal] = field(default_factory=dict)


class Catalog:
    """Known models by name, alias and undated name."""

    def __init__(self, models: dict[str, ModelInfo], source: str = "<memory>",
                 server_tools: dict[str, dict[str, Decimal]] | None = None) -> None:
        self.models = models
        self.source = source
        # USD per use of provider-run tools, by provider type and feature name.
        self.server_tools = server_tools or {}
        self._names: dict[str, ModelInfo] = {}
        for info in models.values():
            for alias in info.aliases:
                self._names.setdefault(alias, info)
        self._names.update(models)  # a model's own name wins over another's alias

    def find(self, model: str) -> ModelInfo | None:
        """The entry for ``model`` as sent to a provider (``models/`` prefixes ignored)."""
        name = model.removeprefix("models/")
        found = self._names.get(name)
        if found is None:
            undated = _DATE_SUFFIX.sub("", name)
            found = self._names.get(undated) if undated != name else None
        return found


def catalog_path(config: GatewayConfig) -> Traversable:
    """The catalog file ``config`` uses."""
    if config.catalog:
        return Path(config.catalog).expanduser()
    return DEFAULT_PATH if DEFAULT_PATH.exists() else SHIPPED_PATH


def load_catalog(path: Traversable) -> Catalog:
    """Read and validate a catalog file; :class:`ConfigError` lists every problem."""
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read the model catalog ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: invalid YAML ({exc})"]) from None
    problems = Problems(source)
    models: dict[str, ModelInfo] = {}
    tools: dict[str, dict[str, Decimal]] = {}
    if not isinstance(raw, dict) or set(raw) - {"models", "server_tools"}:
        problems.add("", "expected a mapping with the keys 'models' and 'server_tools'")
    else:
        tools = _server_tools(raw.get("server_tools"), problems)
        entries = raw.get("models") or {}
        if not isinstance(entries, dict):
            problems.add("models", "expected a mapping of model names")
            entries = {}
        for name, entry in entries.items():
            # Each entry on its own: one broken entry does not hide the others' problems.
            info = build(ModelInfo, entry, problems, f"models.{name}")
            if info is not None:
                _check_price(info.price, f"models.{name}.price", problems)
                models[str(name)] = info
    problems.raise_if_any()
    return Catalog(models, source, tools)


def _server_tools(raw: object, problems: Problems) -> dict[str, dict[str, Decimal]]:
    """``server_tools``: USD per use, by provider type and feature name."""
    tools = convert(dict[str, dict[str, Decimal]], raw or {}, problems, "server_tools") or {}
    for provider, prices in tools.items():
        where = f"server_tools.{provider}"
        if provider not in _PROVIDER_TYPES:
            problems.add(where, f"unknown provider type (known: {', '.join(_PROVIDER_TYPES)})")
        for name, price in (prices or {}).items():
            if name not in FEATURES:
                problems.add(f"{where}.{name}", f"unknown feature (known: {', '.join(FEATURES)})")
            elif price is not None and price < 0:
                problems.add(f"{where}.{name}", f"expected zero or more, got {price}")
    return tools


def _check_price(price: PriceConfig, path: str, problems: Problems) -> None:
    for name in ("input", "cached_input", "output"):
        value = getattr(price, name)
        if value is not None and value < 0:
            problems.add(f"{path}.{name}", f"expected zero or more, got {value}")
    for name in ("input", "output"):
        if getattr(price, name) is None:
            problems.add(f"{path}.{name}", "required key is missing (a decimal number)")


def target_price(target: TargetConfig, catalog: Catalog) -> Price | None:
    """The price of ``target``: its own fields over the catalog's; ``None`` when the input or
    output price is unknown. Cached input costs the input price unless stated."""
    listed = catalog.find(target.model)
    base = listed.price if listed is not None else PriceConfig()
    own = target.price or PriceConfig()
    value_in = own.input if own.input is not None else base.input
    value_out = own.output if own.output is not None else base.output
    if value_in is None or value_out is None:
        return None
    cached = own.cached_input if own.cached_input is not None else base.cached_input
    return Price(input=value_in, cached_input=value_in if cached is None else cached,
                 output=value_out)
