"""Provider adapters, looked up by the ``type`` of a provider in config."""

from __future__ import annotations

import aiohttp

from onyproxy.config.model import ProviderConfig
from onyproxy.providers.anthropic import AnthropicAdapter
from onyproxy.providers.base import Adapter, Reply, UpstreamError
from onyproxy.providers.gemini import GeminiAdapter
from onyproxy.providers.mock import MockAdapter
from onyproxy.providers.openai import OpenAIAdapter

__all__ = ["ADAPTERS", "Adapter", "Reply", "UpstreamError", "build_adapters"]

ADAPTERS: dict[str, type[Adapter]] = {
    OpenAIAdapter.type: OpenAIAdapter,
    MockAdapter.type: MockAdapter,
    GeminiAdapter.type: GeminiAdapter,
    AnthropicAdapter.type: AnthropicAdapter,
}


def build_adapters(providers: dict[str, ProviderConfig],
                   session: aiohttp.ClientSession) -> dict[str, Adapter]:
    """One adapter instance per configured provider, by provider name."""
    return {name: ADAPTERS[cfg.type](name, cfg, session) for name, cfg in providers.items()}
