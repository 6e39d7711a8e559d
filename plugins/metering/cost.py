"""Prices of the configured targets and the cost of an exchange, in exact decimals.

Built once at start from the catalog and each target's ``price`` override. A target whose
input or output price is known neither way is *unpriced*: its exchanges cost 0 and are flagged
``unpriced``, and the start-up log names it, so a missing price is noticed, not invoiced as 0
by accident.
"""

from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal

from onyproxy.catalog import Catalog, ModelInfo, Price, target_price
from onyproxy.config.model import GatewayConfig, TargetConfig
from onyproxy.exchange import Usage

log = logging.getLogger("onyproxy.metering")

PER_TOKENS = Decimal(1_000_000)


class Prices:
    """``(provider, provider model) -> Price`` for every configured target."""

    def __init__(self, config: GatewayConfig, catalog: Catalog) -> None:
        self.catalog = catalog
        self._types = {name: provider.type for name, provider in config.providers.items()}
        self._prices: dict[tuple[str, str], Price | None] = {}
        self._targets: dict[str, list[TargetConfig]] = {}
        for name, model in config.models.items():
            self._targets[name] = list(model.targets)
            for target in model.targets:
                key = (target.provider, target.model)
                # The same provider model under two client names: the first price wins.
                self._prices.setdefault(key, self._priced(target))

    def _priced(self, target: TargetConfig) -> Price | None:
        price = target_price(target, self.catalog)
        per_use = self.catalog.server_tools.get(self._types.get(target.provider, ""))
        return dataclasses.replace(price, per_use=per_use) if price and per_use else price

    def unpriced(self) -> list[tuple[str, str]]:
        """Targets without a price, as ``(provider, model)``."""
        return sorted(key for key, price in self._prices.items() if price is None)

    def warn_unpriced(self) -> None:
        for provider, model in self.unpriced():
            log.warning("metering: no price for model '%s' of provider '%s' (not in %s and no "
                        "price in its target): its usage is recorded with cost 0, flagged "
                        "'unpriced'", model, provider, self.catalog.source)

    def price(self, provider: str, model: str) -> Price | None:
        key = (provider, model)
        if key in self._prices:
            return self._prices[key]
        # A target not in the config (a routing plugin may add some): the catalog alone.
        return self._priced(TargetConfig(provider=provider, model=model))

    def most_expensive(self, model: str) -> tuple[Price | None, ModelInfo | None]:
        """For a budget reservation: the dearest target of the client-facing ``model`` (any
        may end up serving it) and the catalog entry with the largest output ceiling."""
        prices = [self._prices.get((t.provider, t.model)) for t in self._targets.get(model, [])]
        known = [p for p in prices if p is not None]
        infos = [i for t in self._targets.get(model, [])
                 if (i := self.catalog.find(t.model)) is not None]
        top = max(known, key=lambda p: (p.output, p.input)) if known else None
        info = max(infos, key=lambda i: i.max_output or 0) if infos else None
        return top, info


def cost_of(usage: Usage, price: Price) -> Decimal:
    """USD for ``usage`` at ``price``: uncached input, cached input and output (reasoning is
    part of output), and each provider-run tool use at its per-use price. Exact: Decimal
    arithmetic, no rounding."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    total = ((usage.prompt_tokens - cached) * price.input + cached * price.cached_input
             + usage.completion_tokens * price.output)
    tools = sum((count * price.per_use[name] for name, count in usage.server_tool_uses.items()
                 if name in price.per_use), Decimal(0))
    return total / PER_TOKENS + tools


def unpriced_tools(usage: Usage, price: Price) -> list[str]:
    """The provider-run tools ``usage`` used that ``price`` has no per-use price for."""
    return sorted(name for name, count in usage.server_tool_uses.items()
                  if count and name not in price.per_use)


def estimated_cost(input_tokens: int, output_tokens: int, price: Price) -> Decimal:
    """USD for a reservation (all input at the full input price)."""
    return (input_tokens * price.input + output_tokens * price.output) / PER_TOKENS
