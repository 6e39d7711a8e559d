"""The ``redis`` backend: windows shared by every gateway process through one Redis.

One EVALSHA per request on the way in (every scope checked and recorded atomically), and one on
the way out only when there is something to do there (a slot to release, an estimate to
correct). redis-py's ``Script`` sends EVALSHA and falls back to loading the script when Redis
answers NOSCRIPT (after a restart or a failover).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from plugins.ratelimit.config import RateLimitConfig
from plugins.ratelimit.lua import ACQUIRE, FINISH, RENEW
from plugins.ratelimit.window import (
    NEVER,
    REASONS,
    WINDOW_US,
    BackendUnavailable,
    Outcome,
    Scope,
    ScopeState,
    Ticket,
)

_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


class RedisBackend:
    """Sliding-window logs in Redis, exact across processes and machines."""

    def __init__(self, config: RateLimitConfig,
                 clock: Callable[[], float] | None = None) -> None:
        assert config.url, "checked at config time"
        self.prefix = config.prefix
        self.lease_us = int(config.lease_s * 1_000_000)
        self.clock = clock  # None: Redis server time (production); tests inject one
        self.client = aioredis.from_url(
            config.url, socket_timeout=config.timeout_s,
            socket_connect_timeout=config.timeout_s,
            # One immediate retry re-dials a connection Redis dropped (restart, idle timeout);
            # no retry on timeouts, where the script may have run and must not run twice.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self.acquire_script = self.client.register_script(ACQUIRE)
        self.finish_script = self.client.register_script(FINISH)
        self.renew_script = self.client.register_script(RENEW)
        self.held: dict[str, list[str]] = {}  # lease -> its concurrency keys, while in flight
        self.renewer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.renewer = asyncio.create_task(self._renew_forever(), name="ratelimit-renew")

    async def stop(self) -> None:
        if self.renewer is not None:
            self.renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.renewer
        await self.client.aclose()

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    def keys(self, scope: Scope) -> list[str]:
        stem = f"{self.prefix}{scope.name}:"
        return [stem + "r", stem + "t", stem + "ts", stem + "c"]

    def _now_arg(self) -> str:
        return "" if self.clock is None else str(int(self.clock() * 1_000_000))

    async def acquire(self, ticket: Ticket) -> Outcome:
        keys = [key for scope in ticket.scopes for key in self.keys(scope)]
        args: list[Any] = [self._now_arg(), WINDOW_US, self.lease_us, ticket.lease,
                           ticket.tokens]
        for scope in ticket.scopes:
            args += [_limit(scope.rpm), _limit(scope.tpm), _limit(scope.concurrent)]
        reply = await self._call(self.acquire_script, keys, args)
        outcome = parse_outcome(reply)
        held = [self.keys(s)[3] for s in ticket.scopes if s.concurrent is not None]
        if outcome.allowed and held:
            self.held[ticket.lease] = held
        return outcome

    async def finish(self, ticket: Ticket, used_tokens: int) -> None:
        # Stop renewing first: if Redis is down now, the lease runs out on its own.
        self.held.pop(ticket.lease, None)
        keys = [key for scope in ticket.scopes for key in self.keys(scope)]
        args: list[Any] = [self._now_arg(), WINDOW_US, ticket.lease, ticket.tokens, used_tokens]
        for scope in ticket.scopes:
            args += [int(scope.tpm is not None), int(scope.concurrent is not None)]
        await self._call(self.finish_script, keys, args)

    async def renew(self) -> None:
        """Push back the expiry of every lease this process holds, in one round-trip."""
        pairs = [(key, lease) for lease, keys in self.held.items() for key in keys]
        if pairs:
            await self._call(self.renew_script, [k for k, _ in pairs],
                             [self._now_arg(), self.lease_us, *(lease for _, lease in pairs)])

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_us / 3_000_000)
            # A failed renewal is retried next round; requests report the outage themselves.
            with contextlib.suppress(BackendUnavailable):
                await self.renew()

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except _FAILURES as exc:
            raise BackendUnavailable(type(exc).__name__) from exc


def _limit(value: int | None) -> int:
    return -1 if value is None else value


def parse_outcome(reply: list[int]) -> Outcome:
    """The ACQUIRE script's flat reply as an :class:`Outcome`."""
    allowed, now, reason, blocked, retry = (int(v) for v in reply[:5])
    states = tuple(
        ScopeState(requests=int(reply[i]), oldest_request_us=_stamp(reply[i + 1]),
                   tokens=int(reply[i + 2]), oldest_token_us=_stamp(reply[i + 3]),
                   in_flight=int(reply[i + 4]))
        for i in range(5, len(reply), 5))
    if allowed:
        return Outcome(allowed=True, now_us=now, states=states)
    return Outcome(allowed=False, now_us=now, states=states, reason=REASONS[reason - 1],
                   blocked=blocked - 1, retry_after_us=retry)


def _stamp(value: int) -> int | None:
    return None if int(value) == NEVER else int(value)
