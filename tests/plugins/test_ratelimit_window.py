"""The sliding-window log, run identically against the memory and the Redis backend.

Time comes from an injected clock (the Redis scripts take it as an argument instead of ``TIME``),
so every boundary is checked to the microsecond without sleeping.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator

import pytest
from redis_server import RedisServer

from plugins.ratelimit.config import RateLimitConfig
from plugins.ratelimit.memory import MemoryBackend
from plugins.ratelimit.redis_backend import RedisBackend
from plugins.ratelimit.window import NEVER, Outcome, Scope, Ticket


class Clock:
    """Seconds, moved by hand."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


def redis_backend(url: str, clock: Clock | None, lease_s: float = 60.0) -> RedisBackend:
    config = RateLimitConfig(backend="redis", url=url, prefix=f"t{uuid.uuid4().hex}:",
                             lease_s=lease_s)
    return RedisBackend(config, clock=clock)


@pytest.fixture(params=["memory", "redis"])
async def backend(request, clock):
    if request.param == "memory":
        yield MemoryBackend(clock=clock)
        return
    redis = redis_backend(request.getfixturevalue("redis_url"), clock)
    yield redis
    await redis.stop()


def ticket(*scopes: Scope, tokens: int = 1) -> Ticket:
    return Ticket(lease=uuid.uuid4().hex, scopes=scopes, tokens=tokens)


async def run(backend, *scopes: Scope, tokens: int = 1, times: int = 1) -> list[Outcome]:
    return [await backend.acquire(ticket(*scopes, tokens=tokens)) for _ in range(times)]


async def test_no_burst_of_twice_the_limit_across_a_minute_boundary(backend, clock):
    rpm = Scope("k", "key", rpm=10)
    clock.now = 1_050.0  # 50 s into a clock minute: a fixed window would reset at 1_060
    assert all(o.allowed for o in await run(backend, rpm, times=10))
    clock.now = 1_061.0
    refused = (await run(backend, rpm))[0]
    assert not refused.allowed
    assert refused.reason == "requests"
    assert refused.retry_after_us == 49_000_000  # the first request leaves the window at 1_110
    clock.now = 1_109.999_999
    assert not (await run(backend, rpm))[0].allowed
    clock.now = 1_110.0
    assert all(o.allowed for o in await run(backend, rpm, times=10))
    assert not (await run(backend, rpm))[0].allowed


async def test_a_slot_frees_exactly_when_the_oldest_request_leaves(backend, clock):
    rpm = Scope("k", "key", rpm=3)
    for offset in (0.0, 1.0, 2.0):
        clock.now = 1_000.0 + offset
        assert (await run(backend, rpm))[0].allowed
    clock.now = 1_060.5
    assert (await run(backend, rpm))[0].allowed
    refused = (await run(backend, rpm))[0]
    assert refused.retry_after_us == 500_000
    assert refused.states[0].requests == 3


async def test_tokens_are_reserved_and_corrected_to_the_real_usage(backend, clock):
    tpm = Scope("k", "key", tpm=100)
    first = ticket(tpm, tokens=40)
    assert (await backend.acquire(first)).allowed
    clock.now += 10
    assert (await run(backend, tpm, tokens=40))[0].allowed
    refused = (await run(backend, tpm, tokens=40))[0]
    assert (refused.allowed, refused.reason) == (False, "tokens")
    assert refused.retry_after_us == 50_000_000  # when the first 40 leave the window
    await backend.finish(first, 10)  # it really used 10
    allowed = (await run(backend, tpm, tokens=40))[0]
    assert allowed.allowed
    assert allowed.states[0].tokens == 90


async def test_usage_learned_after_its_reservation_expired_counts_from_then(backend, clock):
    tpm = Scope("k", "key", tpm=100)
    long_call = ticket(tpm, tokens=10)
    await backend.acquire(long_call)
    clock.now += 70  # a long stream: its reservation has left the window
    await backend.finish(long_call, 50)
    outcome = (await run(backend, tpm, tokens=10))[0]
    assert outcome.states[0].tokens == 50  # the 40 learned late, plus this request's 10


async def test_a_request_larger_than_the_limit_is_refused_for_good(backend):
    outcome = (await run(backend, Scope("k", "key", tpm=100), tokens=101))[0]
    assert (outcome.allowed, outcome.reason, outcome.retry_after_us) == (False, "tokens", NEVER)


async def test_concurrency_slots_are_held_until_finished(backend):
    scope = Scope("k", "key", concurrent=2)
    calls = [ticket(scope), ticket(scope)]
    assert all([(await backend.acquire(c)).allowed for c in calls])
    refused = await backend.acquire(ticket(scope))
    assert (refused.allowed, refused.reason, refused.retry_after_us) == \
        (False, "concurrent", 1_000_000)
    await backend.finish(calls[0], 1)
    await backend.finish(calls[0], 1)  # a second finish of the same lease changes nothing
    assert (await backend.acquire(ticket(scope))).allowed
    assert not (await backend.acquire(ticket(scope))).allowed


async def test_a_refused_request_costs_no_scope_anything(backend):
    wide, narrow = Scope("a", "account", rpm=5, tpm=100), Scope("k", "key", rpm=1)
    assert (await run(backend, wide, narrow, tokens=10))[0].allowed
    refused = (await run(backend, wide, narrow, tokens=10))[0]
    assert (refused.allowed, refused.blocked) == (False, 1)
    assert refused.states[0].requests == 1
    assert refused.states[0].tokens == 10


async def test_the_longest_wait_of_several_refusing_scopes_is_reported(backend, clock):
    short, long = Scope("s", "key", rpm=1), Scope("l", "account", rpm=1)
    await run(backend, long)
    clock.now += 30
    await run(backend, short)
    refused = (await run(backend, short, long))[0]
    assert refused.blocked == 0  # "short" was used 0 s ago: it frees last
    assert refused.retry_after_us == 60_000_000


async def test_a_limit_of_zero_refuses_everything_without_a_retry_time(backend):
    outcome = (await run(backend, Scope("k", "key", rpm=0)))[0]
    assert (outcome.allowed, outcome.retry_after_us) == (False, NEVER)


async def test_backends_agree_on_a_random_workload(redis_url):
    """The Lua scripts and the Python code reach the same decisions, step by step."""
    clocks = Clock(), Clock()
    # Leases never run out here: the memory backend has none (its process cannot die alone).
    memory = MemoryBackend(clock=clocks[0])
    redis = redis_backend(redis_url, clocks[1], lease_s=1e6)
    scopes = [Scope("a", "account", rpm=8, tpm=300, concurrent=4),
              Scope("k1", "key", rpm=5, tpm=120), Scope("k2", "key", concurrent=2, tpm=90)]
    rng = random.Random(6)
    open_calls: list[Ticket] = []
    try:
        for _ in range(400):
            step = rng.choice([0.0, 0.5, 3.0, 11.0])
            for clock in clocks:
                clock.now += step
            if open_calls and rng.random() < 0.4:
                call = open_calls.pop(rng.randrange(len(open_calls)))
                used = rng.choice([0, call.tokens, rng.randrange(1, 80)])
                await memory.finish(call, used)
                await redis.finish(call, used)
                continue
            call = ticket(scopes[0], rng.choice(scopes[1:]), tokens=rng.randrange(1, 60))
            expected, got = await memory.acquire(call), await redis.acquire(call)
            assert got == expected
            if got.allowed:
                open_calls.append(call)
    finally:
        await redis.stop()


async def test_redis_lease_of_a_dead_gateway_expires(redis_url, clock):
    dead = redis_backend(redis_url, clock, lease_s=30)
    scope = Scope("k", "key", concurrent=1)
    try:
        assert (await dead.acquire(ticket(scope))).allowed  # never finished: the process died
        clock.now += 29
        assert not (await dead.acquire(ticket(scope))).allowed
        clock.now += 1.5
        assert (await dead.acquire(ticket(scope))).allowed
    finally:
        await dead.stop()


async def test_redis_leases_of_running_calls_are_renewed(redis_url, clock):
    backend = redis_backend(redis_url, clock, lease_s=30)
    scope = Scope("k", "key", concurrent=1)
    call = ticket(scope)
    try:
        assert (await backend.acquire(call)).allowed
        for _ in range(4):  # a two-minute stream, renewed along the way
            clock.now += 25
            await backend.renew()
        assert not (await backend.acquire(ticket(scope))).allowed
        await backend.finish(call, 1)
        assert (await backend.acquire(ticket(scope))).allowed
    finally:
        await backend.stop()


async def test_redis_renews_leases_in_the_background_on_its_own_clock(redis_url):
    backend = redis_backend(redis_url, None, lease_s=3)  # Redis TIME; renewed every second
    call = ticket(Scope("k", "key", concurrent=1))
    await backend.start()
    try:
        assert (await backend.acquire(call)).allowed
        leases = backend.keys(call.scopes[0])[3]
        first = await backend.client.zscore(leases, call.lease)
        for _ in range(600):
            if (await backend.client.zscore(leases, call.lease) or 0) > first:
                break
            await asyncio.sleep(0.05)
        assert (await backend.client.zscore(leases, call.lease) or 0) > first
        await backend.finish(call, 1)
        assert await backend.client.zscore(leases, call.lease) is None
    finally:
        await backend.stop()


async def test_redis_reloads_the_script_after_a_flush_and_keys_expire(redis_url, clock):
    backend = redis_backend(redis_url, clock)
    scope = Scope("k", "key", rpm=5, tpm=50, concurrent=2)
    try:
        assert (await backend.acquire(ticket(scope))).allowed
        await backend.client.script_flush()
        assert (await backend.acquire(ticket(scope, tokens=2))).states[0].requests == 2
        keys = await backend.client.keys(f"{backend.prefix}*")
        assert len(keys) == 4
        assert all([await backend.client.pttl(key) > 0 for key in keys])
    finally:
        await backend.stop()


async def test_memory_forgets_idle_scopes(clock):
    backend = MemoryBackend(clock=clock)
    for index in range(50):
        await backend.acquire(ticket(Scope(f"ip:{index}", "ip", rpm=5)))
    clock.now += 61
    await backend.acquire(ticket(Scope("ip:new", "ip", rpm=5)))
    assert set(backend.logs) == {"ip:new"}
