"""The model finder page and its JSON: public, filtered, with a scored recommendation."""

from __future__ import annotations

import re

import yaml
from dashboard_fixtures import open_dashboard
from test_models_recommend import CATALOG


async def finder(aiohttp_client, tmp_path):
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(CATALOG))
    return await open_dashboard(
        aiohttp_client, tmp_path, catalog=str(tmp_path / "models.yaml"),
        providers={"mock": {"type": "mock"},
                   "eu-openai": {"type": "openai", "base_url": "https://eu.example/v1",
                                 "api_key": "k", "region": "eu"}},
        models={"house-model": {"targets": [{"provider": "eu-openai", "model": "big-vision"}]}})


def rows(html: str) -> list[str]:
    table = html[html.index('id="models-list"'):]
    return [part.split("<")[0] for part in table.split('<th scope="row">')[1:]]


async def test_the_finder_is_public_and_lists_the_catalog(aiohttp_client, tmp_path):
    ui = await finder(aiohttp_client, tmp_path)
    response = await ui.client.get("/ui/models")
    assert response.status == 200
    html = await response.text()
    assert rows(html) == ["echo", "tiny-embedding", "small-vision", "text-only", "big-vision"]
    assert "house-model" in html
    assert '<label for="max_input_price">' in html and '<label for="min_context">' in html


async def test_filters_narrow_the_list(aiohttp_client, tmp_path):
    ui = await finder(aiohttp_client, tmp_path)
    html = await (await ui.client.get(
        "/ui/models?needs=vision&needs=tools&max_input_price=1&min_context=100000")).text()
    assert rows(html) == ["small-vision"]
    assert re.search(r'id="need-vision"\s+checked', html)
    eu = await (await ui.client.get("/ui/models?region=eu")).text()
    assert rows(eu) == ["big-vision"]
    none = await (await ui.client.get("/ui/models?provider=anthropic&needs=vision")).text()
    assert "No model matches these filters." in none


async def test_a_described_need_gets_a_scored_recommendation(aiohttp_client, tmp_path):
    ui = await finder(aiohttp_client, tmp_path)
    html = await (await ui.client.get(
        "/ui/models", params={"describe": "cheap model that reads screenshots"})).text()
    picks = html[html.index('id="recommendations"'):html.index('id="catalog-title"')]
    assert picks.index("small-vision") < picks.index("big-vision")
    assert "Priority <strong>cost</strong>" in picks
    assert "need:vision" in picks and "pts" in picks


async def test_bad_filter_values_are_explained_not_crashed(aiohttp_client, tmp_path):
    ui = await finder(aiohttp_client, tmp_path)
    response = await ui.client.get("/ui/models?max_input_price=lots&min_context=-5")
    html = await response.text()
    assert response.status == 200
    assert "Max input price: enter an amount" in html and "Min context: enter" in html
    api = await ui.client.get("/ui/api/models?max_input_price=lots")
    assert api.status == 400


async def test_the_models_json_carries_entries_and_recommendations(aiohttp_client, tmp_path):
    ui = await finder(aiohttp_client, tmp_path)
    data = await (await ui.client.get(
        "/ui/api/models?needs=tools&describe=best+coding+agents")).json()
    assert [d["name"] for d in data["data"]] == ["small-vision", "text-only", "big-vision"]
    assert data["recommendations"][0]["name"] == "big-vision"
    assert data["need"]["priority"] == "quality"
    assert data["data"][2]["served_as"] == ["house-model"]


async def test_the_description_is_escaped(aiohttp_client, tmp_path):
    ui = await finder(aiohttp_client, tmp_path)
    html = await (await ui.client.get(
        "/ui/models", params={"describe": '"><script>alert(1)</script>'})).text()
    assert "<script>alert(1)" not in html
