"""Residency: keep requests inside the regions the caller (and the operator) allow.

Providers carry a ``region`` in config (``tr``, ``eu``, ``us`` ...). The auth plugin puts the
regions a key and its account may use in ``ex.identity.allowed_regions``; this plugin's own
``regions`` limit every request, whoever sends it. ``on_request`` drops the targets whose
provider is outside the allowed regions, and refuses with 403 when none is left, so nothing is
sent anywhere. A provider without a region is outside every list: where data goes must be
stated, not assumed.

It must run after ``auth`` (which sets the identity) and before ``routing`` (which orders the
targets and sheds the call when every circuit is open): ``check_config`` refuses any other
order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from onyproxy.accounts import ValidationError, normalize_regions
from onyproxy.config.model import GatewayConfig
from onyproxy.errors import GatewayError
from onyproxy.exchange import Exchange
from onyproxy.pipeline import Plugin


def _regions(value: list[str]) -> str | None:
    try:
        normalize_regions(value)
    except ValidationError as exc:
        return exc.message
    return None


@dataclass(frozen=True)
class ResidencyConfig:
    """Options of the ``residency`` plugin."""

    regions: list[str] = field(default_factory=list, metadata={
        "check": _regions,
        "doc": "regions every request is limited to, whoever sends it (e.g. [tr, eu]); "
               "empty: only the caller's own limits apply"})


class ResidencyPlugin(Plugin):
    """Filters ``ex.targets`` to the allowed regions, or refuses with 403."""

    name = "residency"
    Config = ResidencyConfig

    def __init__(self, config: ResidencyConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        self.everyone = normalize_regions(config.regions) or None  # empty: no limit of its own
        self.region_of = {name: (p.region or "").lower() or None
                          for name, p in gateway.config.providers.items()}

    @staticmethod
    def check_config(config: ResidencyConfig,
                     gateway: GatewayConfig) -> Iterator[tuple[str, str]]:
        names = [entry.get("name") for entry in gateway.pipeline if isinstance(entry, dict)]
        here = names.index("residency")
        if "auth" in names and names.index("auth") > here:
            yield "name", "residency must come after auth, which tells whose limits apply"
        if "routing" in names and names.index("routing") < here:
            yield "name", "residency must come before routing, so routing only orders " \
                          "targets inside the allowed regions"

    def allowed(self, ex: Exchange) -> list[str] | None:
        """The regions this request may go to; ``None`` when nothing limits it."""
        caller = ex.identity.allowed_regions if ex.identity is not None else None
        if self.everyone is None:
            return caller
        if caller is None:
            return self.everyone
        return [region for region in caller if region in self.everyone]

    async def on_request(self, ex: Exchange) -> None:
        """Drop targets outside the allowed regions; 403 when none is left."""
        allowed = self.allowed(ex)
        if allowed is None:
            return
        if ex.listing is not None:
            ex.listing = {model: kept for model, targets in ex.listing.items()
                          if (kept := [t for t in targets
                                       if self.region_of.get(t.provider) in allowed])}
            return
        kept = [t for t in ex.targets if self.region_of.get(t.provider) in allowed]
        if not kept:
            where = ", ".join(allowed) or "none"
            raise GatewayError(
                403, "permission_error",
                f"The model '{ex.model}' has no provider in the regions this request may be "
                f"sent to ({where}); it was not sent anywhere.", param="model",
                code="region_not_allowed")
        if len(kept) < len(ex.targets):
            ex.state[self.name] = {"dropped": len(ex.targets) - len(kept)}
            ex.targets = kept
