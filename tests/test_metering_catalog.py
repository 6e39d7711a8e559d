"""The model catalog (onyproxy/defaults/models.yaml) and the prices metering takes from it:
lookups by name, alias and dated snapshot, per-target overrides, exact decimal costs, and
catalog problems reported at start with the file and key path."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from conftest import make_config

from onyproxy.catalog import SHIPPED_PATH, Catalog, Price, load_catalog, target_price
from onyproxy.config.errors import ConfigError
from onyproxy.config.model import PriceConfig, TargetConfig
from onyproxy.exchange import Usage
from plugins.metering.config import MeteringConfig, spool_root
from plugins.metering.cost import Prices, cost_of, unpriced_tools

CATALOG = load_catalog(SHIPPED_PATH)


def test_the_shipped_catalog_prices_every_model_and_knows_each_provider():
    assert {info.provider for info in CATALOG.models.values()} == {
        "openai", "anthropic", "gemini", "mock"}
    for name, info in CATALOG.models.items():
        assert info.price.input is not None and info.price.output is not None, name
        assert info.context_window and info.description, name
    assert all(CATALOG.models[m].price.input == 0 for m in ("mock-small", "mock-large"))


@pytest.mark.parametrize(("sent", "listed"), [
    ("gpt-4o", "gpt-4o"), ("gpt-4o-2024-11-20", "gpt-4o"),
    ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # its own (higher) price, not gpt-4o's
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("models/gemini-2.5-flash", "gemini-2.5-flash"), ("mock-large-backup", "mock-large"),
])
def test_models_are_found_by_name_alias_snapshot_and_prefix(sent, listed):
    assert CATALOG.find(sent) is CATALOG.models[listed]


def test_a_target_price_overrides_the_catalog_field_by_field():
    own = TargetConfig(provider="p", model="gpt-4o", price=PriceConfig(input=Decimal("2")))
    assert target_price(own, CATALOG) == Price(Decimal("2"), Decimal("1.25"), Decimal("10.0"))
    unknown = TargetConfig(provider="p", model="my-finetune")
    assert target_price(unknown, CATALOG) is None
    priced = TargetConfig(provider="p", model="my-finetune",
                          price=PriceConfig(input=Decimal("1"), output=Decimal("4")))
    assert target_price(priced, CATALOG) == Price(Decimal(1), Decimal(1), Decimal(4))


def test_cost_is_exact_with_cached_input_at_its_own_price():
    usage = Usage(prompt_tokens=1_234_567, completion_tokens=89_012, cached_tokens=1_000_000)
    price = Price(Decimal("2.50"), Decimal("1.25"), Decimal("10.00"))
    assert cost_of(usage, price) == Decimal("0.5864175") + Decimal("1.25") + Decimal("0.89012")


def test_unpriced_targets_are_listed(tmp_path):
    config = make_config({"providers": {"up": {"type": "openai", "base_url": "http://x.test"}},
                          "models": {"a": {"targets": [{"provider": "up", "model": "gpt-4o"},
                                                       {"provider": "up", "model": "mine"}]}}},
                         tmp_path=tmp_path)
    assert Prices(config, CATALOG).unpriced() == [("up", "mine")]


def test_a_broken_catalog_stops_the_start_naming_file_and_key(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  m1: {provider: openai, price: {input: -1, output: 2}}\n"
                    "  m2: {provider: nobody, price: {input: 1, output: 2}}\n"
                    "  m3: {provider: openai, price: {input: 1}, colour: red}\n")
    with pytest.raises(ConfigError) as raised:
        load_catalog(path)
    text = "\n".join(raised.value.problems)
    assert f"{path}: models.m1.price.input: expected zero or more" in text
    assert "models.m2.provider" in text and "models.m3.colour: unknown key" in text
    assert "models.m3.price.output: required key is missing" in text
    with pytest.raises(ConfigError, match="model catalog"):
        make_config({"catalog": str(path), "pipeline": [{"name": "metering"}]})


def test_the_spool_lives_beside_the_sqlite_file_unless_configured(tmp_path):
    config = make_config(tmp_path=tmp_path)
    assert spool_root(MeteringConfig(), config) == Path(f"{tmp_path}/spool")
    assert spool_root(MeteringConfig(spool_dir="/var/spool/onyproxy"), config) == Path(
        "/var/spool/onyproxy")
    mongo = make_config({"storage": {"url": "mongodb://db/onyproxy"}})
    assert spool_root(MeteringConfig(), mongo) == Path("data/spool")


def test_catalog_from_memory_resolves_aliases_without_shadowing_names():
    from onyproxy.catalog import ModelInfo

    a = ModelInfo(provider="openai", price=PriceConfig(Decimal(1), None, Decimal(1)),
                  aliases=["b"])
    b = ModelInfo(provider="openai", price=PriceConfig(Decimal(2), None, Decimal(2)))
    catalog = Catalog({"a": a, "b": b})
    assert catalog.find("b") is b


def test_provider_run_tool_uses_are_priced_per_use_by_provider_type(tmp_path):
    config = make_config({
        "providers": {"claude": {"type": "anthropic", "base_url": "http://x.test"}},
        "models": {"c": {"targets": [{"provider": "claude", "model": "claude-sonnet-4-5"}]}}},
        tmp_path=tmp_path)
    price = Prices(config, CATALOG).price("claude", "claude-sonnet-4-5")
    assert price is not None and price.per_use["web_search"] == Decimal("0.01")
    usage = Usage(prompt_tokens=1000, completion_tokens=100,
                  server_tool_uses={"web_search": 7, "web_fetch": 2})
    tokens = Decimal(1000) * price.input / 1_000_000 + Decimal(100) * price.output / 1_000_000
    assert cost_of(usage, price) == tokens + Decimal("0.07")
    assert unpriced_tools(usage, price) == []
    assert unpriced_tools(Usage(server_tool_uses={"code_execution": 1}), price) == \
        ["code_execution"]


def test_broken_per_use_prices_stop_the_start_naming_the_key(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models: {}\nserver_tools:\n  anthropic: {web_serch: 0.01, web_fetch: -1}\n"
                    "  nobody: {web_search: 1}\n")
    with pytest.raises(ConfigError) as raised:
        load_catalog(path)
    text = "\n".join(raised.value.problems)
    assert "server_tools.anthropic.web_serch: unknown feature" in text
    assert "server_tools.anthropic.web_fetch: expected zero or more" in text
    assert "server_tools.nobody: unknown provider type" in text
