"""The model finder: the catalog with filters, and a recommendation for a described need.

Public (no sign-in needed): it shows prices and capabilities from the model catalog and
which models this gateway serves, nothing about any account.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from onyproxy.catalog import catalog_path, load_catalog
from onyproxy.catalog_recommend import WEIGHTS, parse_need, recommend, recommendation_record
from onyproxy.catalog_search import (
    CAPABILITIES,
    Entry,
    Filters,
    entries,
    entry_record,
    parse_usd,
    providers,
    regions,
    search,
)
from onyproxy.dashboard.pages import gateway, json_reply, page, render

MAX_DESCRIPTION = 500


@dataclass(eq=False)
class FinderCache:
    entries: list[Entry] | None = None


FINDER: web.AppKey[FinderCache] = web.AppKey("dashboard_finder", FinderCache)


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/models", models_page)
    router.add_get("/api/models", models_json)


@page(None)
async def models_page(request: web.Request) -> web.StreamResponse:
    found = _entries(request)
    filters, problems = parse_filters(request.query)
    context: dict[str, Any] = {
        "title": "Model finder", "matches": search(found, filters), "total": len(found),
        "q": request.query, "problems": problems, "capabilities": CAPABILITIES,
        "providers": providers(found), "regions": regions(found),
        "priorities": sorted(WEIGHTS), "need": None, "picks": []}
    describe = request.query.get("describe", "").strip()[:MAX_DESCRIPTION]
    if describe or request.query.get("recommend"):
        need = parse_need(describe, filters, _priority(request.query))
        context.update(need=need, picks=recommend(found, need))
    return render(request, "models.html", context)


@page(None)
async def models_json(request: web.Request) -> web.StreamResponse:
    found = _entries(request)
    filters, problems = parse_filters(request.query)
    if problems:
        return json_reply({"error": {"message": "; ".join(problems), "status": 400}}, 400)
    data: dict[str, Any] = {"data": [entry_record(e) for e in search(found, filters)]}
    describe = request.query.get("describe", "").strip()[:MAX_DESCRIPTION]
    if describe or request.query.get("recommend"):
        need = parse_need(describe, filters, _priority(request.query))
        data["recommendations"] = [recommendation_record(p) for p in recommend(found, need)]
        data["need"] = {"priority": need.priority, "recognised": list(need.recognised)}
    return json_reply(data)


def parse_filters(query: MultiMapping[str]) -> tuple[Filters, list[str]]:
    """Filters from the form's query string, and a message per field that made no sense."""
    problems: list[str] = []
    needs = frozenset(n for n in query.getall("needs", []) if n in CAPABILITIES)
    filters = Filters(
        max_input_price=_decimal(query.get("max_input_price"), "Max input price", problems),
        max_output_price=_decimal(query.get("max_output_price"), "Max output price", problems),
        min_context=_integer(query.get("min_context"), "Min context", problems),
        needs=needs, provider=query.get("provider") or None, region=query.get("region") or None)
    return filters, problems


def _entries(request: web.Request) -> list[Entry]:
    """The catalog joined with the config, read on first use and kept for the process."""
    cache = request.app[FINDER]
    if cache.entries is None:
        config = gateway(request).config
        cache.entries = entries(load_catalog(catalog_path(config)), config)
    return cache.entries


def _priority(query: MultiMapping[str]) -> Any:
    value = query.get("priority")
    return value if value in WEIGHTS else None


def _decimal(value: str | None, label: str, problems: list[str]) -> Decimal | None:
    try:
        return parse_usd(value)
    except ValueError:
        problems.append(f"{label}: enter an amount in USD such as 0.5")
        return None


def _integer(value: str | None, label: str, problems: list[str]) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        problems.append(f"{label}: enter a whole number of tokens such as 128000")
        return None
    return int(value)
