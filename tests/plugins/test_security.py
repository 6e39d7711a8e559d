"""The security plugin's hooks with hand-built Exchanges, over a real SQLite store: events
(metric, JSON log line, stored record), suspension with its audit entry, the writer's retries,
client addresses hashed, and the config checks."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from onyproxy.accounts import create_account
from onyproxy.config import ConfigError, parse_config
from onyproxy.errors import GatewayError
from onyproxy.exchange import Exchange, Identity
from onyproxy.keys import create_key
from onyproxy.logs import JsonFormatter
from onyproxy.storage import SecurityEvent, StorageError, new_id, open_store, utcnow
from plugins.security import Plugin
from plugins.security.config import (
    AuthFailuresConfig,
    ManyIpsConfig,
    SecurityConfig,
    SpikeConfig,
)
from plugins.security.writer import ACTOR, DECISION, EventWriter, Pending

PEPPER = "test-pepper-0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 600_000.0

    def __call__(self) -> float:
        return self.now


class Metrics:
    def __init__(self) -> None:
        self.events: list[str] = []

    def security_event(self, kind: str) -> None:
        self.events.append(kind)


class Auth:
    """Stands in for the auth plugin: counts how often its key cache was dropped."""

    name = "auth"

    def __init__(self) -> None:
        self.forgotten = 0

    def forget_keys(self) -> None:
        self.forgotten += 1


class FlakyStore:
    """The real store, failing the next ``failures`` calls of the named methods."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failing: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.failing.get(name, 0) > 0:
                self.failing[name] -= 1
                raise StorageError("database unreachable (test)")
            return await method(*args, **kwargs)
        return call


@pytest.fixture
async def store(tmp_path):
    opened = await open_store(f"sqlite:///{tmp_path}/security.db")
    yield FlakyStore(opened)
    await opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log_lines():
    """JSON lines the ``onyproxy.security`` logger writes, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("onyproxy.security")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


@pytest.fixture
async def make_plugin(store, clock):
    started: list[Plugin] = []

    async def make(**options: Any) -> Plugin:
        auth = Auth()
        gateway = SimpleNamespace(
            config=SimpleNamespace(security=SimpleNamespace(key_pepper=PEPPER)),
            store=store, metrics=Metrics(),
            pipeline=SimpleNamespace(get=lambda name: auth if name == "auth" else None))
        plugin = Plugin(SecurityConfig(**options), gateway, clock=clock)
        plugin.auth = auth
        await plugin.start()
        started.append(plugin)
        return plugin

    yield make
    for plugin in started:
        await plugin.stop()


async def new_key(store: FlakyStore) -> tuple[str, str]:
    account = await create_account(store.inner, email="ada@example.com", name="Ada Lovelace")
    issued = await create_key(store.inner, account.id, pepper=PEPPER)
    return account.id, issued.record.id


def exchange(account_id: str | None = None, key_id: str | None = None,
             ip: str = "192.0.2.1", client: str | None = None) -> Exchange:
    ex = Exchange(request_id="req_test", surface="openai", shape="openai", operation="chat",
                  path="/v1/chat/completions", headers={}, query={}, client_ip=client or ip,
                  user_agent=None, model="mock-small")
    if key_id is not None:
        ex.identity = Identity(account_id=account_id or "acc_x", key_id=key_id)
    return ex


def failed(ip: str = "192.0.2.1", client: str | None = None, status: int = 401,
           code: str = "invalid_api_key") -> Exchange:
    ex = exchange(ip=ip, client=client)
    ex.status, ex.error = status, GatewayError(status, "authentication_error", "no", code=code)
    return ex


SPIKY = {"usage_spike": SpikeConfig(min_requests_per_minute=5)}


# events ------------------------------------------------------------------------------------
async def test_a_spike_is_a_metric_a_json_log_line_and_a_stored_event(store, make_plugin,
                                                                      log_lines):
    account_id, key_id = await new_key(store)
    plugin = await make_plugin(**SPIKY)
    for _ in range(6):
        await plugin.on_request(exchange(account_id, key_id))
    await plugin.writer.drain()
    assert plugin.gateway.metrics.events == ["usage_spike"]
    [line] = log_lines()
    assert line["level"] == "warning" and line["logger"] == "onyproxy.security"
    assert (line["kind"], line["action"], line["key_id"], line["account_id"]) == (
        "usage_spike", "log", key_id, account_id)
    assert line["evidence"]["per_minute"] == 6.0 and line["evidence"]["threshold"] == 5.0
    [event] = await store.inner.list_security_events()
    assert (event.id, event.kind, event.action, event.key_id) == (
        line["event_id"], "usage_spike", "log", key_id)
    assert not (await store.inner.get_key(key_id)).suspended  # action log: no suspension


async def test_one_incident_raises_one_event_per_cooldown(store, make_plugin, clock):
    account_id, key_id = await new_key(store)
    plugin = await make_plugin(cooldown_s=600, **SPIKY)
    for _ in range(50):
        await plugin.on_request(exchange(account_id, key_id))
    clock.now += 601
    for _ in range(50):
        await plugin.on_request(exchange(account_id, key_id))
    assert plugin.gateway.metrics.events == ["usage_spike", "usage_spike"]


async def test_tokens_count_when_the_exchange_completes(store, make_plugin):
    account_id, key_id = await new_key(store)
    plugin = await make_plugin(usage_spike=SpikeConfig(min_tokens_per_minute=1000))
    ex = exchange(account_id, key_id)
    ex.usage.prompt_tokens, ex.usage.completion_tokens = 900, 200
    await plugin.on_complete(ex)
    assert plugin.gateway.metrics.events == ["usage_spike"]


async def test_a_detector_that_is_off_sees_nothing(store, make_plugin):
    account_id, key_id = await new_key(store)
    plugin = await make_plugin(usage_spike=SpikeConfig(action="off",
                                                       min_requests_per_minute=1))
    assert plugin.spikes is None
    for _ in range(10):
        await plugin.on_request(exchange(account_id, key_id))
    assert plugin.gateway.metrics.events == []


# suspension --------------------------------------------------------------------------------
async def test_action_suspend_suspends_the_key_and_audits_the_evidence(store, make_plugin):
    account_id, key_id = await new_key(store)
    plugin = await make_plugin(usage_spike=SpikeConfig(action="suspend",
                                                       min_requests_per_minute=5))
    for _ in range(6):
        await plugin.on_request(exchange(account_id, key_id))
    await plugin.writer.drain()
    key = await store.inner.get_key(key_id)
    assert key.suspended and key.suspended_by == ACTOR
    assert key.suspended_reason.startswith("requests per minute 6 above 5")
    [entry] = await store.inner.list_audit(actor=ACTOR)
    assert (entry.action, entry.target, entry.at) == ("key.suspend", key_id, key.suspended_at)
    [event] = await store.inner.list_security_events(action="suspend")
    assert entry.details == {"account_id": account_id, "key_id": key_id, "decision": DECISION,
                             "kind": "usage_spike", "reason": key.suspended_reason,
                             "evidence": event.evidence, "event_id": event.id}
    assert event.account_id == account_id and event.at == key.suspended_at
    assert plugin.auth.forgotten == 1  # this worker applies it at once


async def test_a_key_suspended_first_elsewhere_gets_no_second_audit_entry(store, make_plugin):
    account_id, key_id = await new_key(store)
    await store.inner.suspend_key(key_id, reason="earlier", by="cli:root", at=utcnow())
    plugin = await make_plugin(many_ips=ManyIpsConfig(action="suspend", max_ips=1))
    for ip in ("198.51.100.1", "198.51.100.2"):
        await plugin.on_request(exchange(account_id, key_id, client=ip))
    await plugin.writer.drain()
    assert (await store.inner.get_key(key_id)).suspended_reason == "earlier"
    assert await store.inner.list_audit(actor=ACTOR) == []
    [event] = await store.inner.list_security_events()
    assert (event.kind, event.action) == ("many_ips", "log")


async def test_the_writer_retries_through_an_outage_without_repeating_steps(store):
    account_id, key_id = await new_key(store)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    forgotten: list[int] = []
    writer = EventWriter(lambda: store, lambda: forgotten.append(1), sleep=sleep)
    event = SecurityEvent(id=new_id("sec"), kind="many_ips", at=utcnow(), action="suspend",
                          key_id=key_id, account_id=account_id, reason="r")
    store.failing = {"suspend_key": 2, "add_security_event": 1}
    await writer._write_with_retries(Pending(event))
    assert slept == [0.5, 1.0, 2.0]
    assert len(await store.inner.list_audit(actor=ACTOR)) == 1
    assert len(await store.inner.list_security_events()) == 1
    assert forgotten == [1]


# addresses ---------------------------------------------------------------------------------
async def test_failed_auth_bursts_name_the_address_by_a_keyed_hash(store, make_plugin,
                                                                  log_lines):
    plugin = await make_plugin(auth_failures=AuthFailuresConfig(threshold=3))
    for _ in range(2):
        await plugin.on_complete(failed(ip="10.0.0.1", client="203.0.113.77"))
    await plugin.on_complete(failed(ip="10.0.0.1", client="203.0.113.77", status=429,
                                    code="too_many_auth_failures"))
    await plugin.writer.drain()
    [line] = log_lines()
    assert line["kind"] == "auth_failures" and line["key_id"] is None
    assert len(line["client"]) == 16 and "203.0.113" not in json.dumps(line)
    assert line["client"] == plugin._client("203.0.113.77")  # stable: correlatable
    [event] = await store.inner.list_security_events(kind="auth_failures")
    assert event.client == line["client"] and event.evidence["failures"] == 3


async def test_client_ip_keep_writes_the_address_itself(store, make_plugin):
    plugin = await make_plugin(client_ip="keep",
                               auth_failures=AuthFailuresConfig(threshold=2))
    for _ in range(2):
        await plugin.on_complete(failed(ip="203.0.113.9"))  # no auth state: the TCP peer
    await plugin.writer.drain()
    [event] = await store.inner.list_security_events()
    assert event.client == "203.0.113.9"


async def test_other_errors_are_not_auth_failures(store, make_plugin):
    plugin = await make_plugin(auth_failures=AuthFailuresConfig(threshold=1))
    await plugin.on_complete(failed(status=429, code="rate_limit_exceeded"))
    await plugin.on_complete(failed(status=403, code="model_not_allowed"))
    assert plugin.gateway.metrics.events == []


async def test_many_ips_counts_the_address_auth_resolved_behind_a_proxy(store, make_plugin):
    account_id, key_id = await new_key(store)
    plugin = await make_plugin(many_ips=ManyIpsConfig(max_ips=2))
    for n in range(3):  # one load balancer, three clients behind it
        await plugin.on_request(exchange(account_id, key_id, ip="10.0.0.1",
                                         client=f"198.51.100.{n}"))
    assert plugin.gateway.metrics.events == ["many_ips"]


# configuration -----------------------------------------------------------------------------
def parse(pipeline: list[dict[str, Any]]):
    raw = {"providers": {"mock": {"type": "mock"}},
           "models": {"m": {"targets": [{"provider": "mock", "model": "m"}]}},
           "security": {"key_pepper": PEPPER}, "pipeline": pipeline}
    return parse_config(yaml.safe_dump(raw), "test.yaml", {})


def test_the_plugin_must_come_after_auth():
    with pytest.raises(ConfigError) as caught:
        parse([{"name": "security"}, {"name": "auth"}])
    assert "pipeline[0].name" in str(caught.value) and "auth" in str(caught.value)
    config = parse([{"name": "auth"}, {"name": "security"}])
    assert config.plugins[1].config == SecurityConfig()


@pytest.mark.parametrize("options, where", [
    ({"auth_failures": {"action": "suspend"}}, "auth_failures.action"),
    ({"usage_spike": {"factor": 1}}, "usage_spike.factor"),
    ({"many_ips": {"max_ips": 0}}, "many_ips.max_ips"),
    ({"client_ip": "plain"}, "client_ip"),
    ({"usage_spikes": {}}, "usage_spikes"),
])
def test_bad_options_are_refused_with_their_path(options, where):
    with pytest.raises(ConfigError) as caught:
        parse([{"name": "auth"}, {"name": "security", **options}])
    assert f"pipeline[1].{where}" in str(caught.value)


async def test_stopping_finishes_the_event_the_writer_was_busy_with(store):
    account_id, key_id = await new_key(store)
    writer = EventWriter(lambda: store, lambda: None)
    writer.start()
    event = SecurityEvent(id=new_id("sec"), kind="many_ips", at=utcnow(), action="suspend",
                          key_id=key_id, account_id=account_id, reason="r")
    store.failing = {"add_security_event": 1}  # the writer then waits to retry ...
    writer.submit(event)
    while store.failing["add_security_event"]:
        await asyncio.sleep(0.01)
    await writer.stop()  # ... and shutdown finishes it, without a second suspension entry
    assert [e.id for e in await store.inner.list_security_events()] == [event.id]
    assert len(await store.inner.list_audit(actor=ACTOR)) == 1
