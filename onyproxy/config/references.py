"""Cross-section checks: names that must refer to something defined elsewhere."""

from __future__ import annotations

from onyproxy.config.errors import Problems, join
from onyproxy.config.model import GatewayConfig


def check_references(config: GatewayConfig, problems: Problems) -> None:
    """Record a problem for every model target naming an unknown provider, and the like."""
    from onyproxy.providers import ADAPTERS

    known = sorted(config.providers)
    for name, provider in config.providers.items():
        if provider.type not in ADAPTERS:
            problems.add(join(join("providers", name), "type"),
                         f"provider type '{provider.type}' is not available in this build "
                         f"(available: {', '.join(sorted(ADAPTERS))})")
    for model_name, model in config.models.items():
        base = join(join("models", model_name), "targets")
        if not model.targets:
            problems.add(base, "expected at least one target")
        for index, target in enumerate(model.targets):
            if target.provider not in config.providers:
                problems.add(
                    join(join(base, index), "provider"),
                    f"unknown provider '{target.provider}' (known: {', '.join(known) or 'none'})",
                )
    if config.server.tls is not None:
        for key in ("cert_file", "key_file"):
            if not getattr(config.server.tls, key):
                problems.add(join("server.tls", key), "expected a file path")
