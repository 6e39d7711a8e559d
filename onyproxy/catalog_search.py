"""Finding models in the catalog: each entry's facts, and filters over them.

The catalog (:mod:`onyproxy.catalog`, ``defaults/models.yaml``) says what a model costs and can
do; the gateway config says which of them this gateway serves, under which client-facing
names, and from which provider regions. :func:`entries` joins the two; :func:`search` keeps the
entries that pass every filter; :func:`refusals` says why one does not. The dashboard's model
finder, its JSON and ``onyproxy models`` all use these functions; the scoring of
:mod:`onyproxy.catalog_recommend` builds on them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from onyproxy.catalog import Catalog, ModelInfo
from onyproxy.config.model import GatewayConfig

#: Capabilities a need may ask for, and how an entry shows each.
CAPABILITIES = ("tools", "vision", "pdf", "audio", "video", "embeddings")
_MODALITY_OF = {"vision": "image", "pdf": "pdf", "audio": "audio", "video": "video"}


@dataclass(frozen=True)
class Entry:
    """One catalog model, with what this gateway knows about serving it."""

    name: str
    info: ModelInfo
    served_as: tuple[str, ...] = ()  # client-facing model names in gateway.yaml that use it
    regions: frozenset[str] = frozenset()  # catalog region and the regions of its providers

    @property
    def embedding(self) -> bool:
        text = f"{self.name} {self.info.description}".lower()
        return "embedding" in text

    @property
    def capabilities(self) -> frozenset[str]:
        found = {cap for cap, modality in _MODALITY_OF.items()
                 if modality in self.info.modalities}
        if self.info.tools:
            found.add("tools")
        if self.embedding:
            found.add("embeddings")
        return frozenset(found)

    @property
    def input_price(self) -> Decimal:
        return self.info.price.input or Decimal(0)

    @property
    def output_price(self) -> Decimal:
        return self.info.price.output or Decimal(0)

    @property
    def blended_price(self) -> Decimal:
        """USD per 1M tokens at 3 input tokens to 1 output token, a common chat mix."""
        return (3 * self.input_price + self.output_price) / 4


@dataclass(frozen=True)
class Filters:
    """Every filter is optional; an entry must pass all that are set."""

    max_input_price: Decimal | None = None
    max_output_price: Decimal | None = None
    min_context: int | None = None
    needs: frozenset[str] = field(default_factory=frozenset)
    provider: str | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.needs) - set(CAPABILITIES)
        if unknown:
            raise ValueError(f"unknown need(s): {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(CAPABILITIES)})")


def entries(catalog: Catalog, config: GatewayConfig | None = None) -> list[Entry]:
    """Every catalog model, sorted by name, joined with the gateway config when given."""
    served: dict[str, list[str]] = {}
    regions: dict[str, set[str]] = {}
    for client_name, model in (config.models.items() if config is not None else ()):
        for target in model.targets:
            info = catalog.find(target.model)
            if info is None:
                continue
            name = _name_of(catalog, info)
            if client_name not in served.setdefault(name, []):
                served[name].append(client_name)
            provider = config.providers.get(target.provider)
            if provider is not None and provider.region:
                regions.setdefault(name, set()).add(provider.region.lower())
    found = []
    for name, info in sorted(catalog.models.items()):
        own = {info.region.lower()} if info.region else set()
        found.append(Entry(name, info, tuple(served.get(name, ())),
                           frozenset(own | regions.get(name, set()))))
    return found


def refusals(entry: Entry, filters: Filters) -> list[str]:
    """Why ``entry`` fails ``filters`` (one short reason per failed filter); empty: it passes."""
    reasons = []
    if filters.max_input_price is not None and entry.input_price > filters.max_input_price:
        reasons.append(f"input ${entry.input_price}/1M is over ${filters.max_input_price}")
    if filters.max_output_price is not None and entry.output_price > filters.max_output_price:
        reasons.append(f"output ${entry.output_price}/1M is over ${filters.max_output_price}")
    if filters.min_context is not None and (entry.info.context_window or 0) < filters.min_context:
        reasons.append(f"context {entry.info.context_window or 'unknown'} is under "
                       f"{filters.min_context}")
    missing = sorted(set(filters.needs) - entry.capabilities)
    if missing:
        reasons.append(f"lacks {', '.join(missing)}")
    if filters.provider and entry.info.provider != filters.provider.lower():
        reasons.append(f"provider is {entry.info.provider}")
    if filters.region and filters.region.lower() not in entry.regions:
        reasons.append("not known to be served from " + filters.region)
    return reasons


def search(found: Iterable[Entry], filters: Filters) -> list[Entry]:
    """The entries that pass every filter, cheapest (blended price) first, then by name."""
    return sorted((e for e in found if not refusals(e, filters)),
                  key=lambda e: (e.blended_price, e.name))


def providers(found: Iterable[Entry]) -> list[str]:
    return sorted({e.info.provider for e in found})


def regions(found: Iterable[Entry]) -> list[str]:
    return sorted({region for e in found for region in e.regions})


def parse_needs(text: str | Iterable[str] | None) -> frozenset[str]:
    """``"tools,vision"`` or ``["tools", "vision"]`` → the needs; unknown words raise
    :class:`ValueError` naming them."""
    if text is None:
        return frozenset()
    words = text.split(",") if isinstance(text, str) else list(text)
    needs = frozenset(w.strip().lower() for w in words if w and w.strip())
    Filters(needs=needs)  # validates
    return needs


def parse_usd(text: str | None) -> Decimal | None:
    """A price ceiling in USD (``"0.5"``); empty means none. :class:`ValueError` otherwise."""
    if text is None or not text.strip():
        return None
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"expected an amount in USD such as 0.5, got {text!r}")
    return amount


def entry_record(entry: Entry) -> dict:
    """The JSON of an entry (prices as strings: exact decimals)."""
    info = entry.info
    return {
        "name": entry.name,
        "provider": info.provider,
        "description": info.description,
        "price": {"input": str(entry.input_price), "output": str(entry.output_price),
                  "cached_input": None if info.price.cached_input is None
                  else str(info.price.cached_input)},
        "context_window": info.context_window,
        "max_output": info.max_output,
        "modalities": list(info.modalities),
        "capabilities": sorted(entry.capabilities),
        "regions": sorted(entry.regions),
        "served_as": list(entry.served_as),
    }


def _name_of(catalog: Catalog, info: ModelInfo) -> str:
    for name, candidate in catalog.models.items():
        if candidate is info:
            return name
    raise LookupError("catalog entry without a name")
