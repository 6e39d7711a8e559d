"""Counting failed sign-ins: each failure answers a little later, then a block follows.

One guard per gateway process, shared by the API (the auth plugin), the admin API and the
dashboard's sign-in form, so failures anywhere count toward the same slow-down and block.
Failures are counted per client address (see :mod:`onyproxy.client_address`) and per presented
key prefix (the public part of an ``ony-`` key), so guessing one key from many addresses is
blocked too. A block refuses only credentials that fail: a valid key from a blocked address (a
shared NAT, an office) still gets through.

Per process: with ``server.workers: N`` an address may fail up to N times ``max`` before every
worker has blocked it. With 240-bit keys guessing is hopeless anyway; the block sheds load and
makes misbehaving clients visible. The table is bounded: entries whose failures have all left
the window are dropped first, then the least recently seen. The auth plugin fills in its
``failures`` and ``trusted_proxies`` options at construction; without it the defaults hold and
the TCP peer is the client.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from onyproxy.client_address import Network, client_address
from onyproxy.errors import GatewayError
from onyproxy.keys import KEY_PREFIX, display_prefix

log = logging.getLogger("onyproxy.auth")

MAX_DELAY_S = 2.0
MAX_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """How many failures within ``window_s`` block for ``block_s``; ``delay_s`` per failure."""

    max: int = 10
    window_s: float = 60.0
    block_s: float = 300.0
    delay_s: float = 0.1


@dataclass(slots=True)
class _Entry:
    times: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class FailureGuard:
    """Failures and blocks by client address and by key prefix."""

    def __init__(self, policy: FailurePolicy = FailurePolicy(),
                 trusted: tuple[Network, ...] = (),
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.policy, self.trusted = policy, trusted
        self._clock, self._sleep = clock, sleep
        self._max = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def configure(self, policy: FailurePolicy, trusted: tuple[Network, ...],
                  clock: Callable[[], float] | None = None,
                  sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        """Set by the auth plugin from its options (and tests' clocks)."""
        self.policy, self.trusted = policy, trusted
        self._clock = clock or self._clock
        self._sleep = sleep or self._sleep

    def client(self, peer: str | None, headers: Mapping[str, Any]) -> str:
        """The address a request's failures count against (trusted proxies resolved)."""
        return client_address(peer, headers, self.trusted)

    def blocked_for(self, address: str, credential: str | None = None) -> float:
        """Seconds until ``address`` (or this key's prefix) may fail again; 0: not blocked."""
        now = self._clock()
        waits = [entry.blocked_until - now for name in _names(address, credential)
                 if (entry := self._entries.get(name)) is not None]
        return max([0.0, *waits])

    def fail(self, address: str, credential: str | None = None) -> tuple[float, bool]:
        """Count a failure: (how long to delay the answer, whether this started a block)."""
        delays, blocked = [], False
        for name in _names(address, credential):
            delay, now_blocked = self._count(name)
            delays.append(delay)
            blocked = blocked or now_blocked
        return (0.0 if blocked else max(delays)), blocked

    async def failed(self, address: str, credential: str | None) -> GatewayError | None:
        """After a refused credential: the 429 to answer when blocked, else ``None`` once
        the failure is counted and its delay waited."""
        wait = self.blocked_for(address, credential)
        if wait > 0:
            return too_many_failures(wait)
        delay, blocked = self.fail(address, credential)
        if blocked:
            policy = self.policy
            log.warning("client %s blocked for %gs after %d failed sign-ins within %gs",
                        address, policy.block_s, policy.max, policy.window_s)
        if delay > 0:
            await self._sleep(delay)
        return None

    def _count(self, name: str) -> tuple[float, bool]:
        now = self._clock()
        entry = self._entries.get(name)
        if entry is None:
            self._prune(now)  # first: the new entry, with no failure yet, would look idle
            entry = self._entries[name] = _Entry()
        self._entries.move_to_end(name)
        times, policy = entry.times, self.policy
        while times and now - times[0] >= policy.window_s:
            times.popleft()
        times.append(now)
        if len(times) >= policy.max:
            entry.blocked_until = now + policy.block_s
            times.clear()
            return 0.0, True
        return min(policy.delay_s * (len(times) - 1), MAX_DELAY_S), False

    def _prune(self, now: float) -> None:
        if len(self._entries) < self._max:
            return
        window = self.policy.window_s
        idle = [name for name, entry in self._entries.items()
                if entry.blocked_until <= now and (not entry.times
                                                   or now - entry.times[-1] >= window)]
        for name in idle:
            del self._entries[name]
        while len(self._entries) >= self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def too_many_failures(wait: float) -> GatewayError:
    """The 429 for a blocked address or key prefix, with ``retry-after``."""
    seconds = max(1, math.ceil(wait))
    return GatewayError(
        429, "rate_limit_error",
        f"Too many failed sign-ins from this address or with this key; try again in "
        f"{seconds} seconds.", code="too_many_auth_failures",
        headers={"retry-after": str(seconds)})


def _names(address: str, credential: str | None) -> list[str]:
    names = [f"ip:{address}"]
    if credential and credential.startswith(KEY_PREFIX):
        names.append(f"key:{display_prefix(credential)}")
    return names
