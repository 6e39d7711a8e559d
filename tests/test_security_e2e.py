"""The security plugin in a running gateway over loopback, with the real auth plugin and a
SQLite store: a key that suddenly spikes is suspended and then refused with the same 401 as an
unknown key; the audit entry carries the evidence; the metric counts the event; the log line is
JSON without any prompt text; an admin (API or CLI) reinstates the key."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import yaml
from conftest import BASE_CONFIG, make_config

from onyproxy.accounts import create_account
from onyproxy.appkeys import GATEWAY
from onyproxy.keys import create_key
from onyproxy.logs import JsonFormatter
from plugins.security.plugin import client_hash_key

PEPPER = "security-e2e-pepper-0123456789abcdef"
JWT_SECRET = "security-e2e-jwt-secret-0123456789abcdefgh"
CANARY = "CANARY-prompt-3f9a1c0b7d2e-do-not-log"
CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": f"hi {CANARY}"}]}
FLOOR = 5


def overrides(tmp_path: Path, **security: Any) -> dict[str, Any]:
    options = {"usage_spike": {"action": "suspend", "min_requests_per_minute": FLOOR},
               "auth_failures": {"threshold": 4}, **security}
    return {"storage": {"url": f"sqlite:///{tmp_path}/onyproxy.db"},
            "security": {"key_pepper": PEPPER, "jwt_secret": JWT_SECRET},
            "pipeline": [{"name": "auth", "cache_ttl_s": 0.5, "negative_ttl_s": 0,
                          "trusted_proxies": ["127.0.0.1"],
                          "failures": {"max": 1000, "delay_s": 0}},
                         {"name": "security", **options}, *BASE_CONFIG["pipeline"]]}


@pytest.fixture
def logs():
    """Every line the gateway's loggers write, as the JSON production writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("onyproxy")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # the access log too: the canary must be in none of them
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


class Gateway:
    """One running gateway and calls to it."""

    def __init__(self, server: Any, session: aiohttp.ClientSession) -> None:
        self.server, self.session = server, session
        self.url = str(server.make_url("")).rstrip("/")
        self.gw = server.app[GATEWAY]

    async def issue(self) -> tuple[str, str, str]:
        account = await create_account(self.gw.store, email="ada@example.com",
                                       name="Ada Lovelace")
        issued = await create_key(self.gw.store, account.id, pepper=PEPPER)
        return account.id, issued.record.id, issued.secret

    async def chat(self, secret: str, **headers: str) -> tuple[int, Any]:
        async with self.session.post(self.url + "/v1/chat/completions", json=CHAT,
                                     headers={"authorization": f"Bearer {secret}",
                                              **headers}) as resp:
            return resp.status, await resp.json()

    async def settle(self) -> None:
        """Let the security plugin's background writer finish what it was given."""
        await self.gw.pipeline.get("security").writer.drain()

    async def admin(self, path: str) -> tuple[int, Any]:
        claims = {"sub": "ops@example.com", "role": "admin", "exp": int(time.time()) + 300}
        auth = {"authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}
        async with self.session.post(self.url + path, headers=auth) as resp:
            return resp.status, await resp.json()

    async def metrics(self) -> str:
        async with self.session.get(self.url + "/metrics") as resp:
            return await resp.text()


@pytest.fixture
async def start(aiohttp_server, tmp_path):
    sessions: list[aiohttp.ClientSession] = []

    async def run(**security: Any) -> Gateway:
        from onyproxy.app import create_app

        config = make_config(overrides(tmp_path, **security))
        server = await aiohttp_server(create_app(config))
        sessions.append(aiohttp.ClientSession())
        return Gateway(server, sessions[-1])

    yield run
    for session in sessions:
        await session.close()


async def spike(gateway: Gateway, secret: str) -> None:
    """A burst one past the floor: all answered (the suspension is written behind them)."""
    for _ in range(FLOOR + 1):
        status, _ = await gateway.chat(secret)
        assert status == 200
    await gateway.settle()


async def test_a_spiking_key_is_suspended_audited_counted_logged_and_reinstated(start, logs):
    gateway = await start()
    account_id, key_id, secret = await gateway.issue()
    await spike(gateway, secret)

    status, refused = await gateway.chat(secret)
    _, unknown = await gateway.chat("ony-" + "x" * 40)
    assert status == 401 and refused == unknown  # the same 401 as any unusable key

    [entry] = await gateway.gw.store.list_audit(actor="system:security")
    assert (entry.action, entry.target) == ("key.suspend", key_id)
    details = entry.details
    assert (details["account_id"], details["key_id"], details["kind"]) == (
        account_id, key_id, "usage_spike")
    assert details["evidence"]["per_minute"] > details["evidence"]["threshold"] == FLOOR
    assert details["reason"] and details["decision"]

    assert 'onyproxy_security_events_total{kind="usage_spike"} 1.0' in await gateway.metrics()

    text = logs.getvalue()
    assert CANARY not in text and "hi " not in text
    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    [event] = [line for line in lines if line.get("logger") == "onyproxy.security"]
    assert (event["kind"], event["action"], event["key_id"]) == ("usage_spike", "suspend",
                                                                 key_id)

    status, reinstated = await gateway.admin(f"/admin/keys/{key_id}/reinstate")
    assert status == 200 and reinstated["suspended_at"] is None
    assert (await gateway.chat(secret))[0] == 200  # this worker's cache was dropped
    audit = (await gateway.gw.store.list_audit(target=key_id))[-1]
    assert (audit.action, audit.actor) == ("key.reinstate", "jwt:ops@example.com")
    assert audit.details["suspended_by"] == "system:security"


async def test_action_log_reports_the_spike_and_leaves_the_key_working(start):
    gateway = await start(usage_spike={"action": "log", "min_requests_per_minute": FLOOR})
    _, key_id, secret = await gateway.issue()
    await spike(gateway, secret)
    assert (await gateway.chat(secret))[0] == 200
    [event] = await gateway.gw.store.list_security_events(key_id=key_id)
    assert (event.kind, event.action) == ("usage_spike", "log")
    assert await gateway.gw.store.list_audit(actor="system:security") == []


async def test_a_burst_of_wrong_keys_behind_a_proxy_is_an_event_about_the_client(start):
    gateway = await start()
    for _ in range(4):  # through a trusted proxy (loopback) for client 203.0.113.50
        status, _ = await gateway.chat("ony-" + "y" * 40, **{"x-forwarded-for": "203.0.113.50"})
        assert status == 401
    await gateway.settle()
    [event] = await gateway.gw.store.list_security_events(kind="auth_failures")
    expected = hmac.new(client_hash_key(PEPPER), b"203.0.113.50", hashlib.sha256)
    assert event.client == expected.hexdigest()[:16]
    assert 'onyproxy_security_events_total{kind="auth_failures"} 1.0' in \
        await gateway.metrics()


async def test_behind_a_trusted_proxy_every_record_names_the_forwarded_client(start, logs):
    gateway = await start()
    _, _, secret = await gateway.issue()
    hops = {"x-forwarded-for": "198.51.100.1, 203.0.113.60"}  # the first hop is the client's
    assert (await gateway.chat(secret, **hops))[0] == 200
    [line] = [json.loads(text) for text in logs.getvalue().splitlines()
              if '"client_ip"' in text]
    assert line["client_ip"] == "203.0.113.60"


@pytest.mark.slow
async def test_the_cli_reinstates_a_suspended_key(start, tmp_path):
    gateway = await start()
    _, key_id, secret = await gateway.issue()
    await spike(gateway, secret)
    assert (await gateway.chat(secret))[0] == 401
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({**overrides(tmp_path), **{
        k: v for k, v in BASE_CONFIG.items() if k != "pipeline"}}))
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "onyproxy", "--config", str(path), "keys",
                         "reinstate", key_id, "--json"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["suspended_at"] is None
    await asyncio.sleep(0.6)  # the auth cache TTL of the running gateway
    assert (await gateway.chat(secret))[0] == 200
    listed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "onyproxy", "--config", str(path), "keys",
                         "list"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "active" in listed.stdout
