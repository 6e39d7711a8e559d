"""The auth plugin's hooks, driven with hand-built Exchanges over a real SQLite store."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from multidict import CIMultiDict, CIMultiDictProxy

from onyproxy.accounts import create_account, set_account_status
from onyproxy.config import ConfigError, parse_config
from onyproxy.errors import GatewayError
from onyproxy.exchange import Exchange
from onyproxy.failure_guard import FailureGuard
from onyproxy.keys import create_key, revoke_key
from onyproxy.storage import StorageError, open_store, utcnow
from plugins.auth import Plugin
from plugins.auth.config import AuthConfig, FailuresConfig
from plugins.auth.plugin import INVALID_KEY

PEPPER = "test-pepper-0123456789abcdef"


class ManualClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore:
    """The real store, with a switch that makes it unreachable and a count of key reads."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False
        self.key_reads = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StorageError("database unreachable (test)")
            if name == "get_key_by_hash":
                self.key_reads += 1
            return await method(*args, **kwargs)
        return call


class Metrics:
    def __init__(self) -> None:
        self.limited: list[str] = []

    def ratelimited(self, scope: str) -> None:
        self.limited.append(scope)


@pytest.fixture
async def store(tmp_path):
    opened = await open_store(f"sqlite:///{tmp_path}/auth.db")
    yield CountingStore(opened)
    await opened.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_plugin(store, clock):
    def make(sleep: Any = asyncio.sleep, **options: Any) -> Plugin:
        failures = FailuresConfig(**{"delay_s": 0, **options.pop("failures", {})})
        config = AuthConfig(failures=failures, **options)
        gateway = SimpleNamespace(config=SimpleNamespace(security=SimpleNamespace(
            key_pepper=PEPPER)), store=store, metrics=Metrics(), failure_guard=FailureGuard())
        plugin = Plugin(config, gateway, clock=clock, sleep=sleep)
        return plugin

    return make


async def new_key(store: CountingStore, email: str = "ada@example.com", **options: Any):
    account = await store.inner.get_account_by_email(email) or \
        await create_account(store.inner, email=email, name="Ada Lovelace")
    return await create_key(store.inner, account.id, pepper=PEPPER, **options)


def exchange(headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
             model: str = "mock-small", ip: str = "192.0.2.1") -> Exchange:
    return Exchange(request_id="req_test", surface="openai", shape="openai", operation="chat",
                    path="/v1/chat/completions", headers=headers or {}, query=query or {},
                    client_ip=ip, user_agent=None, model=model)


def bearer(secret: str, **kwargs: Any) -> Exchange:
    return exchange({"authorization": f"Bearer {secret}"}, **kwargs)


async def refused(plugin: Plugin, ex: Exchange) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await plugin.on_request(ex)
    return caught.value


@pytest.mark.parametrize("where", ["bearer", "x-api-key", "x-goog-api-key", "query"])
async def test_every_sdk_header_authenticates(store, make_plugin, where):
    issued = await new_key(store, rpm=60, budget_usd="12.50", models=["mock-small"])
    headers, query = {}, {}
    if where == "bearer":
        headers["authorization"] = f"bearer {issued.secret}"  # the scheme is case-insensitive
    elif where == "query":
        query["key"] = issued.secret
    else:
        headers[where] = issued.secret
    ex = exchange(headers, query)
    await make_plugin().on_request(ex)
    assert ex.identity is not None
    assert (ex.identity.account_id, ex.identity.key_id) == (issued.record.account_id,
                                                             issued.record.id)
    assert ex.identity.role == "user"
    assert ex.identity.limits == {"rpm": 60, "budget_usd": Decimal("12.50")}
    assert ex.identity.allowed_models == ["mock-small"]


async def test_every_key_problem_is_the_same_401(store, make_plugin):
    plugin = make_plugin()
    revoked = await new_key(store)
    await revoke_key(store.inner, revoked.record.id)
    expiring = await new_key(store, expires_at=utcnow() + timedelta(seconds=1))
    suspended = await new_key(store, "sus@example.com")
    await set_account_status(store.inner, suspended.record.account_id, "suspended")
    deleted = await new_key(store, "del@example.com")
    await set_account_status(store.inner, deleted.record.account_id, "deleted")
    await asyncio.sleep(1.05)  # the expiry is checked against the wall clock
    cases = {
        "missing": exchange(),
        "empty bearer": exchange({"authorization": "Bearer "}),
        "not a key": bearer("sk-not-ours"),
        "unknown": bearer("ony-" + "A" * 40),
        "revoked": bearer(revoked.secret),
        "expired": bearer(expiring.secret),
        "suspended account": bearer(suspended.secret),
        "deleted account": bearer(deleted.secret),
    }
    for case, ex in cases.items():
        err = await refused(plugin, ex)
        assert (err.status, err.type, err.message, err.code) == (
            401, "authentication_error", INVALID_KEY, "invalid_api_key"), case
        assert ex.identity is None


async def test_steady_traffic_does_not_read_the_store(store, make_plugin):
    issued = await new_key(store)
    plugin = make_plugin()
    for _ in range(50):
        await plugin.on_request(bearer(issued.secret))
    assert store.key_reads == 1


async def test_concurrent_first_requests_share_one_store_read(store, make_plugin):
    issued = await new_key(store)
    plugin = make_plugin()
    await asyncio.gather(*(plugin.on_request(bearer(issued.secret)) for _ in range(20)))
    assert store.key_reads == 1


async def test_revocation_takes_effect_when_the_cache_entry_expires(store, make_plugin, clock):
    issued = await new_key(store)
    plugin = make_plugin(cache_ttl_s=5)
    await plugin.on_request(bearer(issued.secret))
    await revoke_key(store.inner, issued.record.id)  # e.g. by the CLI: no signal to this worker
    clock.now += 4.9
    await plugin.on_request(bearer(issued.secret))  # still within the documented bound
    clock.now += 0.2
    assert (await refused(plugin, bearer(issued.secret))).status == 401


async def test_suspending_the_account_takes_effect_within_the_ttl(store, make_plugin, clock):
    issued = await new_key(store)
    plugin = make_plugin(cache_ttl_s=5)
    await plugin.on_request(bearer(issued.secret))
    await set_account_status(store.inner, issued.record.account_id, "suspended")
    clock.now += 5
    assert (await refused(plugin, bearer(issued.secret))).status == 401


async def test_forget_keys_applies_a_change_at_once(store, make_plugin):
    issued = await new_key(store)
    plugin = make_plugin(cache_ttl_s=60)
    await plugin.on_request(bearer(issued.secret))
    await revoke_key(store.inner, issued.record.id)
    plugin.forget_keys()
    assert (await refused(plugin, bearer(issued.secret))).status == 401


async def test_unknown_keys_are_remembered_briefly(store, make_plugin, clock):
    plugin = make_plugin(negative_ttl_s=2, failures={"max": 100})
    unknown = "ony-" + "B" * 40
    for _ in range(5):
        await refused(plugin, bearer(unknown))
    assert store.key_reads == 1
    clock.now += 2
    await refused(plugin, bearer(unknown))
    assert store.key_reads == 2


async def test_junk_credentials_never_reach_the_store(store, make_plugin):
    plugin = make_plugin(failures={"max": 100})
    for junk in ("sk-proj-abc", "ony-short", "x" * 5000):
        await refused(plugin, bearer(junk))
    assert store.key_reads == 0


async def test_a_model_outside_the_allow_list_is_403_naming_it(store, make_plugin):
    issued = await new_key(store, models=["mock-small"])
    err = await refused(make_plugin(), bearer(issued.secret, model="mock-large"))
    assert (err.status, err.type, err.param, err.code) == (403, "permission_error", "model",
                                                           "model_not_allowed")
    assert "'mock-large'" in err.message and "mock-small" in err.message


async def test_listing_models_passes_the_allow_list_on(store, make_plugin):
    issued = await new_key(store, models=["mock-small"])
    ex = bearer(issued.secret, model="")  # GET /v1/models names no model
    await make_plugin().on_request(ex)
    assert ex.identity is not None and ex.identity.allowed_models == ["mock-small"]


async def test_wrong_keys_slow_down_then_block_the_address(store, make_plugin, clock):
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
    plugin = make_plugin(failures={"max": 5, "window_s": 60, "block_s": 300, "delay_s": 0.5},
                         sleep=sleep)
    await new_key(store)
    for letter in "CDEFG":  # five different prefixes: only the address adds up
        assert (await refused(plugin, bearer("ony-" + letter * 40))).status == 401
    assert delays == [0.5, 1.0, 1.5]  # the fifth failure blocks instead of waiting
    err = await refused(plugin, bearer("ony-" + "H" * 40))
    assert (err.status, err.code, err.headers) == (429, "too_many_auth_failures",
                                                   {"retry-after": "300"})
    assert (await refused(plugin, exchange())).status == 429  # no key at all: refused too
    assert plugin.gateway.metrics.limited == ["ip", "ip"]
    assert (await refused(plugin, bearer("ony-" + "H" * 40, ip="192.0.2.99"))).status == 401
    clock.now += 300
    assert (await refused(plugin, bearer("ony-" + "H" * 40))).status == 401


async def test_a_valid_key_from_a_blocked_address_gets_through(store, make_plugin):
    """A shared NAT or office: one colleague's wrong keys do not lock the others out."""
    plugin = make_plugin(failures={"max": 3})
    issued = await new_key(store)
    for letter in "JKL":
        await refused(plugin, bearer("ony-" + letter * 40))
    assert plugin.failures.blocked_for("192.0.2.1")
    await plugin.on_request(bearer(issued.secret))
    assert (await refused(plugin, bearer("ony-" + "M" * 40))).status == 429


async def test_guessing_one_key_prefix_from_many_addresses_is_blocked(store, make_plugin):
    plugin = make_plugin(failures={"max": 3})
    issued = await new_key(store)
    prefix = issued.secret[:12]  # the part of a key dashboards and logs show
    guesses = [prefix + letter * (len(issued.secret) - 12) for letter in "NPQR"]
    for number, guess in enumerate(guesses[:3]):
        assert (await refused(plugin, bearer(guess, ip=f"203.0.113.{number}"))).status == 401
    assert (await refused(plugin, bearer(guesses[3], ip="203.0.113.50"))).status == 429
    assert (await refused(plugin, bearer("ony-" + "S" * 40, ip="203.0.113.50"))).status == 401
    await plugin.on_request(bearer(issued.secret, ip="203.0.113.50"))  # the key itself works


def via_proxy(plugin: Plugin, secret: str, *forwarded: tuple[str, str]) -> Exchange:
    """A request from the proxy 10.2.2.2, its client address resolved as the core does with
    the trusted proxies the plugin configured."""
    headers = CIMultiDict({"authorization": f"Bearer {secret}"})
    for name, value in forwarded:
        headers.add(name, value)
    frozen = CIMultiDictProxy(headers)
    return exchange(frozen, ip=plugin.failures.client("10.2.2.2", frozen))


async def test_behind_a_trusted_proxy_failures_count_against_the_forwarded_client(
        store, make_plugin):
    plugin = make_plugin(failures={"max": 2}, trusted_proxies=["10.0.0.0/8"])
    issued = await new_key(store)
    for letter in "FT":
        # The client wrote the first hop itself; the proxy appended the address it saw.
        await refused(plugin, via_proxy(plugin, "ony-" + letter * 40,
                                        ("x-forwarded-for", "198.51.100.7, 203.0.113.5, "
                                                            "10.1.1.1")))
    refusal = await refused(plugin, via_proxy(
        plugin, "ony-" + "U" * 40, ("x-forwarded-for", "198.51.100.7, 203.0.113.5, 10.1.1.1")))
    assert refusal.status == 429
    await plugin.on_request(via_proxy(plugin, issued.secret,
                                      ("x-forwarded-for", "203.0.113.6")))
    assert plugin.failures.blocked_for("203.0.113.5") and not plugin.failures.blocked_for(
        "10.2.2.2")


async def test_forwarded_for_is_ignored_from_untrusted_peers(store, make_plugin):
    plugin = make_plugin(failures={"max": 2})
    wrong = "ony-" + "G" * 40
    for client in ("203.0.113.1", "203.0.113.2"):  # a client cannot spread its failures
        await refused(plugin, exchange({"x-api-key": wrong, "x-forwarded-for": client}))
    assert plugin.failures.blocked_for("192.0.2.1")


async def test_failures_leave_the_window(store, make_plugin, clock):
    plugin = make_plugin(failures={"max": 3, "window_s": 10})
    wrong = "ony-" + "D" * 40
    for _ in range(2):
        await refused(plugin, bearer(wrong))
    clock.now += 10
    for _ in range(2):
        assert (await refused(plugin, bearer(wrong))).status == 401


async def test_missing_keys_do_not_count_as_failures(make_plugin):
    plugin = make_plugin(failures={"max": 2})
    for _ in range(5):
        assert (await refused(plugin, exchange())).status == 401


async def test_store_down_serves_known_keys_and_503s_the_rest(store, make_plugin, clock):
    issued = await new_key(store)
    other = await new_key(store, "bob@example.com")
    plugin = make_plugin(cache_ttl_s=5)
    await plugin.on_request(bearer(issued.secret))
    store.down = True
    clock.now += 60  # long past the TTL: the store is asked, fails, the stale entry serves
    ex = bearer(issued.secret)
    await plugin.on_request(ex)
    assert ex.identity is not None and ex.identity.key_id == issued.record.id
    err = await refused(plugin, bearer(other.secret))
    assert (err.status, err.code, err.headers) == (503, "auth_unavailable", {"retry-after": "5"})
    assert not plugin.failures.blocked_for("192.0.2.1")
    store.down = False
    clock.now += 1  # the fast-fail window after an error has passed
    await plugin.on_request(bearer(other.secret))


async def test_stale_ttl_zero_refuses_every_key_while_the_store_is_down(store, make_plugin,
                                                                          clock):
    issued = await new_key(store)
    plugin = make_plugin(cache_ttl_s=5, stale_ttl_s=0)
    await plugin.on_request(bearer(issued.secret))
    store.down = True
    clock.now += 5
    assert (await refused(plugin, bearer(issued.secret))).status == 503


async def test_last_use_is_written_later_in_one_batch(store, make_plugin):
    issued = await new_key(store)
    plugin = make_plugin()
    for _ in range(3):
        await plugin.on_request(bearer(issued.secret))
    assert (await store.inner.get_key(issued.record.id)).last_used_at is None
    assert plugin.last_used.pending == 1
    store.down = True
    assert await plugin.last_used.flush() == 0 and plugin.last_used.pending == 1
    store.down = False
    assert await plugin.last_used.flush() == 1
    assert (await store.inner.get_key(issued.record.id)).last_used_at is not None


async def test_stop_writes_what_is_pending(store, make_plugin):
    issued = await new_key(store)
    plugin = make_plugin(last_used_interval_s=3600)
    await plugin.start()
    await plugin.on_request(bearer(issued.secret))
    await plugin.stop()
    assert (await store.inner.get_key(issued.record.id)).last_used_at is not None


def test_options_are_validated():
    raw = {"providers": {"mock": {"type": "mock"}},
           "models": {"m": {"targets": [{"provider": "mock", "model": "m"}]}},
           "pipeline": [{"name": "auth", "cache_ttl_s": 0, "failures": {"maxx": 3},
                         "trusted_proxies": ["10.0.0.0/8", "lb.internal"]}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(raw), "gateway.yaml", {})
    found = "\n".join(caught.value.problems)
    assert "pipeline[0].cache_ttl_s: expected a positive number" in found
    assert "pipeline[0].failures.maxx: unknown key" in found
    assert "pipeline[0].trusted_proxies: 'lb.internal' is not an IP address" in found

