"""Shared fixtures: build a gateway from YAML text and serve it over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestServer

from onyproxy.app import create_app
from onyproxy.config import GatewayConfig, parse_config

BASE_CONFIG: dict[str, Any] = {
    "providers": {"mock": {"type": "mock"}},
    "models": {
        "mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]},
    },
    "pipeline": [{"name": "routing", "retries": 0, "timeout_s": 5}],
}


def make_config(overrides: dict[str, Any] | None = None, *, env: dict[str, str] | None = None,
                tmp_path: Any = None) -> GatewayConfig:
    """A validated config: ``BASE_CONFIG`` with top-level sections replaced by ``overrides``.

    With ``tmp_path`` the SQLite store lives there, so tests never share a database.
    """
    raw = {**BASE_CONFIG, **(overrides or {})}
    if tmp_path is not None and "storage" not in (overrides or {}):
        raw["storage"] = {"url": f"sqlite:///{tmp_path}/onyproxy.db"}
    return parse_config(yaml.safe_dump(raw), "test.yaml", env or {})


GatewayFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
def gateway(aiohttp_server, tmp_path) -> GatewayFactory:
    """``await gateway({...overrides})`` → a running gateway ``TestServer`` on loopback."""

    async def start(overrides: dict[str, Any] | None = None, *,
                    config: GatewayConfig | None = None) -> TestServer:
        config = config or make_config(overrides, tmp_path=tmp_path)
        # TestServer runs handlers with handler_cancellation=True, as `onyproxy serve` does.
        return await aiohttp_server(create_app(config))

    return start


@pytest.fixture
async def fake_openai(aiohttp_server):
    """A fake OpenAI upstream on loopback (see ``fakes.openai_upstream``)."""
    from fakes.openai_upstream import start_fake_openai

    _, fake = await start_fake_openai(aiohttp_server)
    return fake


def openai_provider(fake, **extra: Any) -> dict[str, Any]:
    """Config overrides: provider ``up`` at ``fake`` and model ``gpt-test`` served by it."""
    return {
        "providers": {"up": {"type": "openai", "base_url": fake.base_url, "api_key": "sk-up",
                             **extra}, "mock": {"type": "mock"}},
        "models": {"gpt-test": {"targets": [{"provider": "up", "model": "gpt-4o-mini"}]},
                   "mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]}},
    }
