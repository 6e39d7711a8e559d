"""What the privacy tests share: a store on SQLite or on the session's SecantusDB, a config
file pointing the CLI at the same database, and running ``python -m onyproxy`` on it."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml
from storage.conftest import Backend, drop_database

from onyproxy.storage import Store, UsageEvent, open_store

PEPPER = "privacy-test-pepper-0123456789abcdef"
JWT_SECRET = "privacy-test-jwt-secret-0123456789abcdefghij"
PROVIDERS: dict[str, Any] = {
    "istanbul": {"type": "mock", "region": "tr"},
    "frankfurt": {"type": "mock", "region": "eu"},
    "virginia": {"type": "mock", "region": "us"},
    "nowhere": {"type": "mock"},
}
MODELS: dict[str, Any] = {
    "mock-small": {"targets": [{"provider": "virginia", "model": "a"},
                               {"provider": "istanbul", "model": "b"}]},
    "us-only": {"targets": [{"provider": "virginia", "model": "c"}]},
    "unplaced": {"targets": [{"provider": "nowhere", "model": "d"}]},
}


def backend_param(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """SQLite in the test's directory, or a fresh database on the session's SecantusDB."""
    if request.param == "sqlite":
        path = tmp_path / "data" / "onyproxy.db"
        return Backend("sqlite", f"sqlite:///{path}", sqlite_path=path)
    return Backend("mongo", request.getfixturevalue("mongo_url"),
                   {"database": f"onyproxy_privacy_{uuid.uuid4().hex[:12]}"})


BACKENDS = ["sqlite", pytest.param("mongo", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each test once on SQLite and once on MongoDB (import it with ``store_on``)."""
    return backend_param(request, tmp_path)


def storage_url(backend: Backend) -> str:
    """The store URL with the database in it, as a config file names it."""
    if backend.name == "sqlite":
        return backend.url
    parts = urlsplit(backend.url)
    return urlunsplit(parts._replace(path="/" + backend.options["database"]))


def gateway_config(backend: Backend, **sections: Any) -> dict[str, Any]:
    """A config tree on ``backend``: the test providers and models, auth and residency."""
    return {
        "security": {"key_pepper": PEPPER, "jwt_secret": JWT_SECRET},
        "storage": {"url": storage_url(backend)},
        "providers": PROVIDERS, "models": MODELS,
        "pipeline": [{"name": "auth", "cache_ttl_s": 0.2}, {"name": "residency"},
                     {"name": "routing", "retries": 0, "timeout_s": 5}],
        **sections,
    }


def write_config(tmp_path: Path, backend: Backend, **sections: Any) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(gateway_config(backend, **sections)))
    return path


@dataclass
class Cli:
    """``python -m onyproxy --config FILE ...`` as a user runs it."""

    config: Path

    def run(self, *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "onyproxy", "--config", str(self.config),
                               *args], capture_output=True, text=True, timeout=60,
                              cwd=self.config.parent)
        assert done.returncode == status, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)


@pytest.fixture
async def store_on(backend: Backend) -> AsyncIterator[Store]:
    """A store on the backend's database (the one the CLI and the gateway use too)."""
    opened = await open_store(storage_url(backend))
    try:
        yield opened
    finally:
        if backend.name == "mongo":
            await drop_database(backend)
        await opened.close()


def usage(request_id: str, account_id: str, provider: str, at: Any) -> UsageEvent:
    return UsageEvent(request_id=request_id, account_id=account_id, key_id=None,
                      model="mock-small", provider=provider, input_tokens=10,
                      output_tokens=5, created_at=at, ip="203.0.113.7",
                      user_agent="openai-python/1.50")
