"""Helpers for the dashboard tests: a gateway with accounts and keys, and a signed-in client."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp.test_utils import TestClient

from onyproxy.accounts import create_account
from onyproxy.app import create_app
from onyproxy.appkeys import GATEWAY
from onyproxy.config import parse_config
from onyproxy.dashboard.session import CLOCK
from onyproxy.gateway import Gateway
from onyproxy.keys import create_key
from onyproxy.storage import Account

PEPPER = "dashboard-test-pepper-0123456789abcdef"
JWT_SECRET = "dashboard-test-jwt-secret-0123456789abcdefghij"
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def dashboard_config(tmp_path: Any, **sections: Any):
    raw: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{tmp_path}/onyproxy.db"},
        "security": {"key_pepper": PEPPER, "jwt_secret": JWT_SECRET},
        "providers": {"mock": {"type": "mock"}},
        "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]}},
        "pipeline": [{"name": "auth"}, {"name": "routing", "retries": 0, "timeout_s": 5}],
        **sections,
    }
    return parse_config(yaml.safe_dump(raw), "test.yaml", {})


@dataclass
class Person:
    account: Account
    secret: str
    key_id: str


class Dashboard:
    """A running gateway and a browser-like client (cookie jar) against its ``/ui/``."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def gw(self) -> Gateway:
        return self.client.app[GATEWAY]

    async def person(self, email: str = "ayse@example.com", role: str = "user",
                     owner: bool = True, **limits: Any) -> Person:
        """A new account and its key ``laptop`` (an owner key unless ``owner=False``)."""
        account = await create_account(self.gw.store, email=email, name="Ayşe Demir", role=role)
        issued = await create_key(self.gw.store, account.id, pepper=PEPPER, name="laptop",
                                  owner=owner, **limits)
        return Person(account, issued.secret, issued.record.id)

    async def key(self, person: Person, owner: bool = False, **limits: Any) -> tuple[str, str]:
        """Another key of ``person``'s account: (secret, key id)."""
        issued = await create_key(self.gw.store, person.account.id, pepper=PEPPER,
                                  owner=owner, **limits)
        return issued.secret, issued.record.id

    async def csrf(self, path: str = "/ui/signin") -> str:
        """The form token on ``path`` (GET), for this client's session."""
        response = await self.client.get(path)
        return csrf_in(await response.text())

    async def sign_in(self, credential: str):
        token = await self.csrf()
        return await self.client.post("/ui/signin", data={"csrf": token,
                                                          "credential": credential},
                                      allow_redirects=False)

    async def post(self, path: str, data: dict[str, Any] | None = None, *,
                   token_from: str = "/ui/privacy", **kwargs: Any):
        """POST a form with a valid token taken from ``token_from``."""
        token = await self.csrf(token_from)
        return await self.client.post(path, data={"csrf": token, **(data or {})},
                                      allow_redirects=False, **kwargs)


def csrf_in(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


async def open_dashboard(aiohttp_client, tmp_path, *, clock: Callable[[], float] | None = None,
                         **sections: Any) -> Dashboard:
    """A gateway with the dashboard; ``clock`` replaces the wall clock its sessions check."""
    app = create_app(dashboard_config(tmp_path, **sections))
    if clock is not None:
        app[CLOCK] = clock
    return Dashboard(await aiohttp_client(app))


class ManualClock:
    """A clock the test moves: starts at the wall clock's now (so real tokens and keys fit)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def set_cookies(response) -> dict[str, Any]:
    """The cookies a response set, by name (morsels, with their attributes)."""
    return {name: morsel for name, morsel in response.cookies.items()}
