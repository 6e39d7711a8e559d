"""Catalog search and recommendation, and ``onyproxy models list|recommend``."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import yaml

from onyproxy.catalog import SHIPPED_PATH, load_catalog
from onyproxy.catalog_recommend import parse_need, recommend
from onyproxy.catalog_search import Filters, entries, parse_needs, refusals, search
from onyproxy.cli import main
from onyproxy.config import parse_config

CATALOG = {"models": {
    "big-vision": {"provider": "openai", "price": {"input": 5, "output": 20},
                   "context_window": 200000, "modalities": ["text", "image"], "tools": True,
                   "description": "Flagship model for complex coding agents."},
    "small-vision": {"provider": "gemini", "price": {"input": 0.1, "output": 0.4},
                     "context_window": 1000000, "modalities": ["text", "image"], "tools": True,
                     "description": "Cheap multimodal model for high volume."},
    "text-only": {"provider": "anthropic", "price": {"input": 0.8, "output": 4},
                  "context_window": 200000, "modalities": ["text"], "tools": True,
                  "description": "Fast text model."},
    "tiny-embedding": {"provider": "openai", "price": {"input": 0.02, "output": 0},
                       "context_window": 8191, "description": "Text embeddings."},
    "echo": {"provider": "mock", "price": {"input": 0, "output": 0},
             "context_window": 32768, "description": "In-process echo."},
}}


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(CATALOG))
    gateway = {
        "catalog": str(tmp_path / "models.yaml"),
        "storage": {"url": f"sqlite:///{tmp_path}/onyproxy.db"},
        "providers": {"eu-openai": {"type": "openai", "base_url": "https://eu.example/v1",
                                    "api_key": "k", "region": "eu"},
                      "mock": {"type": "mock"}},
        "models": {"house-model": {"targets": [{"provider": "eu-openai",
                                                "model": "big-vision"}]}},
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(gateway))
    config = parse_config(path.read_text(), str(path), {})
    return str(path), entries(load_catalog(tmp_path / "models.yaml"), config)


def names(found) -> list[str]:
    return [e.name for e in found]


def test_filters_combine_price_context_needs_provider_and_region(setup):
    _, found = setup
    assert names(search(found, Filters(needs=frozenset({"vision", "tools"})))) == \
        ["small-vision", "big-vision"]
    assert names(search(found, Filters(max_input_price=Decimal("1"), min_context=150000))) \
        == ["small-vision", "text-only"]
    assert names(search(found, Filters(provider="anthropic"))) == ["text-only"]
    assert names(search(found, Filters(region="EU"))) == ["big-vision"]
    big = next(e for e in found if e.name == "big-vision")
    assert big.served_as == ("house-model",)
    assert refusals(big, Filters(max_input_price=Decimal("1"), needs=frozenset({"pdf"}))) == \
        ["input $5/1M is over $1", "lacks pdf"]


def test_unknown_needs_are_named():
    with pytest.raises(ValueError, match="unknown need"):
        parse_needs("tools,telepathy")
    assert parse_needs(" Tools , vision ") == frozenset({"tools", "vision"})


def test_a_described_need_becomes_filters_and_a_priority():
    need = parse_need("cheap model that reads screenshots and calls tools, 128k context")
    assert need.priority == "cost"
    assert need.filters.needs == frozenset({"vision", "tools"})
    assert need.filters.min_context == 128000
    assert "need:vision" in need.recognised
    quality = parse_need("best model for complex reasoning on long documents, claude")
    assert quality.priority == "quality"
    assert quality.filters.min_context == 200000
    assert quality.filters.provider == "anthropic"
    turkish = parse_need("ucuz görsel model")
    assert turkish.priority == "cost" and turkish.filters.needs == frozenset({"vision"})


def test_explicit_filters_and_priority_win_over_the_text():
    need = parse_need("cheap claude", Filters(provider="openai", min_context=5), "quality")
    assert need.filters.provider == "openai"
    assert need.filters.min_context == 5
    assert need.priority == "quality"


def test_recommendation_scores_are_transparent_sums(setup):
    _, found = setup
    cheap = recommend(found, parse_need("cheap vision model"))
    assert names(p.entry for p in cheap) == ["small-vision", "big-vision"]
    top = cheap[0]
    assert top.score == round(sum(c.points for c in top.criteria), 1)
    assert {c.name for c in top.criteria} == {"cost", "context", "fit", "available"}
    best = recommend(found, parse_need("best model for complex coding agents with images"))
    assert best[0].entry.name == "big-vision"
    notes = {c.name: c.note for c in best[0].criteria}
    assert notes["available"] == "served here as house-model"
    assert "coding" in notes["fit"] and "complex" in notes["fit"]


def test_embeddings_and_mock_only_when_asked_for(setup):
    _, found = setup
    assert "tiny-embedding" not in names(p.entry for p in recommend(found, parse_need("")))
    assert "echo" not in names(p.entry for p in recommend(found, parse_need(""), limit=10))
    picks = recommend(found, parse_need("semantic search embeddings"))
    assert names(p.entry for p in picks) == ["tiny-embedding"]
    assert names(p.entry for p in recommend(found, parse_need("", Filters(provider="mock")))) \
        == ["echo"]


def test_nothing_fits_gives_no_recommendation(setup):
    _, found = setup
    assert recommend(found, parse_need("", Filters(min_context=10_000_000))) == []


def test_the_shipped_catalog_loads_and_recommends():
    found = entries(load_catalog(SHIPPED_PATH))
    picks = recommend(found, parse_need("vision and tools", Filters(
        max_input_price=Decimal("1"), min_context=200000)))
    assert len(picks) == 3
    assert all({"vision", "tools"} <= p.entry.capabilities for p in picks)
    assert all(p.entry.input_price <= 1 for p in picks)


def test_cli_recommend_prints_ranked_scores(setup, capsys):
    path, _ = setup
    status = main(["--config", path, "models", "recommend", "--max-input-price", "10",
                   "--needs", "tools,vision", "--min-context", "100000"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("1. small-vision (gemini)")
    assert "2. big-vision (openai)" in out
    assert "cost" in out and "pts" in out


def test_cli_recommend_json(setup, capsys):
    path, _ = setup
    status = main(["--config", path, "models", "recommend", "--needs", "vision",
                   "--describe", "best for coding agents", "--region", "eu", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert data["need"]["priority"] == "quality"
    assert [d["name"] for d in data["data"]] == ["big-vision"]
    assert data["data"][0]["price"] == {"input": "5", "output": "20", "cached_input": None}
    assert sum(c["points"] for c in data["data"][0]["criteria"]) == \
        pytest.approx(data["data"][0]["score"], abs=0.11)


def test_cli_recommend_says_when_nothing_fits(setup, capsys):
    path, _ = setup
    assert main(["--config", path, "models", "recommend", "--min-context", "99999999"]) == 1
    assert "no catalog model" in capsys.readouterr().err


def test_cli_list_and_its_json(setup, capsys):
    path, _ = setup
    assert main(["--config", path, "models", "list"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:2] == ["MODEL", "PROVIDER"]
    assert "house-model" in table
    assert main(["--config", path, "models", "list", "--needs", "tools", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert [d["name"] for d in data] == ["small-vision", "text-only", "big-vision"]


@pytest.mark.parametrize("flags, message", [
    (["--needs", "telepathy"], "unknown need"),
    (["--max-input-price", "cheap"], "--max-input-price"),
])
def test_cli_bad_flags_exit_1_with_one_line(setup, capsys, flags, message):
    path, _ = setup
    with pytest.raises(SystemExit) as stop:
        main(["--config", path, "models", "list", *flags])
    assert stop.value.code == 1
    assert message in capsys.readouterr().err
