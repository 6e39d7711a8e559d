"""Recipients: the providers a person's requests were sent to, and in which country.

The list comes from the person's usage events (provider, first and last time); the country
comes from the provider's ``region`` in the gateway config. A provider no longer configured,
or configured without a region, is reported as such rather than guessed.
"""

from __future__ import annotations

from typing import Any

from onyproxy.admin.records import timestamp
from onyproxy.config.model import GatewayConfig
from onyproxy.storage import Store

#: Region codes used in provider configs, and what a person reads for them.
REGION_NAMES: dict[str, str] = {
    "tr": "Türkiye",
    "eu": "European Union",
    "eea": "European Economic Area",
    "uk": "United Kingdom",
    "gb": "United Kingdom",
    "ch": "Switzerland",
    "us": "United States",
    "ca": "Canada",
    "jp": "Japan",
    "sg": "Singapore",
    "in": "India",
    "au": "Australia",
}
IN_GATEWAY = "none: answered inside the gateway, nothing was transferred"
NOT_CONFIGURED = "unknown: the provider is no longer configured"
NO_REGION = "unknown: no region configured for this provider"


def region_name(code: str) -> str:
    """A person-readable name for a region code (the code itself when it is not known)."""
    return REGION_NAMES.get(code.lower(), code.upper())


def provider_country(config: GatewayConfig, provider: str) -> tuple[str | None, str]:
    """The region code (or ``None``) and the country text for a provider name."""
    configured = config.providers.get(provider)
    if configured is None:
        return None, NOT_CONFIGURED
    if configured.region:  # what the operator declared, even for the in-process mock
        return configured.region, region_name(configured.region)
    return None, IN_GATEWAY if configured.type == "mock" else NO_REGION


async def recipients(store: Store, config: GatewayConfig, account_id: str) -> list[dict[str, Any]]:
    """Each provider the account's requests reached, with country, count, first and last."""
    found = []
    for recipient in await store.usage_recipients(account_id):
        region, country = provider_country(config, recipient.provider)
        found.append({
            "provider": recipient.provider, "region": region, "country": country,
            "requests": recipient.requests, "first_at": timestamp(recipient.first_at),
            "last_at": timestamp(recipient.last_at),
        })
    return found
