"""The ``memory`` backend: sliding-window logs in this process, exact for this process only.

``acquire`` never awaits, so on one event loop each decision is atomic without a lock. Nothing is
shared between processes, which is why the plugin refuses this backend with ``workers > 1``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from plugins.ratelimit.window import (
    CONCURRENCY_RETRY_US,
    NEVER,
    REASONS,
    WINDOW_US,
    Outcome,
    Scope,
    ScopeState,
    Ticket,
    longer_wait,
)


@dataclass(slots=True)
class TokenEntry:
    at: int
    tokens: int


class ScopeLog:
    """One scope's window: request stamps, token entries (with their sum) and leases."""

    __slots__ = ("by_lease", "leases", "requests", "token_sum", "tokens")

    def __init__(self) -> None:
        self.requests: deque[int] = deque()
        self.tokens: deque[TokenEntry] = deque()
        self.by_lease: dict[str, TokenEntry] = {}  # to correct an estimate to the real usage
        self.token_sum = 0
        self.leases: set[str] = set()

    def trim(self, cutoff: int) -> None:
        """Drop what left the window: entries stamped at or before ``cutoff``."""
        while self.requests and self.requests[0] <= cutoff:
            self.requests.popleft()
        while self.tokens and self.tokens[0].at <= cutoff:
            self.token_sum -= self.tokens.popleft().tokens

    @property
    def empty(self) -> bool:
        return not (self.requests or self.tokens or self.leases)

    def refusal(self, scope: Scope, need: int, now: int) -> tuple[int, int] | None:
        """``(reason code, retry-after µs)`` when this scope refuses the request, else None."""
        worst: tuple[int, int] | None = None
        for code, wait in self._waits(scope, need, now):
            if worst is None or longer_wait(wait, worst[1]):
                worst = (code, wait)
        return worst

    def _waits(self, scope: Scope, need: int, now: int):
        if scope.rpm is not None and len(self.requests) >= scope.rpm:
            index = len(self.requests) - scope.rpm  # the stamp whose expiry makes room
            yield 1, (self.requests[index] + WINDOW_US - now
                      if index < len(self.requests) else NEVER)
        if scope.tpm is not None:
            if need > scope.tpm:
                yield 2, NEVER
            elif self.token_sum + need > scope.tpm:
                yield 2, self._token_wait(self.token_sum + need - scope.tpm, now)
        if scope.concurrent is not None and len(self.leases) >= scope.concurrent:
            yield 3, CONCURRENCY_RETRY_US if scope.concurrent > 0 else NEVER

    def _token_wait(self, excess: int, now: int) -> int:
        freed = 0
        for entry in self.tokens:
            freed += entry.tokens
            if freed >= excess:
                return entry.at + WINDOW_US - now
        return NEVER

    def record(self, scope: Scope, ticket: Ticket, now: int) -> None:
        if scope.rpm is not None:
            self.requests.append(now)
        if scope.tpm is not None:
            entry = TokenEntry(now, ticket.tokens)
            self.tokens.append(entry)
            self.by_lease[ticket.lease] = entry
            self.token_sum += ticket.tokens
        if scope.concurrent is not None:
            self.leases.add(ticket.lease)

    def correct(self, lease: str, reserved: int, used: int, now: int) -> None:
        """Replace a reservation by the real usage; usage learned after it expired counts now."""
        entry = self.by_lease.pop(lease, None)
        if entry is not None and entry.at > now - WINDOW_US:
            entry.tokens = used
            self.token_sum += used - reserved
        elif used > reserved:
            self.tokens.append(TokenEntry(now, used - reserved))
            self.token_sum += used - reserved

    def state(self) -> ScopeState:
        return ScopeState(
            requests=len(self.requests),
            oldest_request_us=self.requests[0] if self.requests else None,
            tokens=self.token_sum,
            oldest_token_us=self.tokens[0].at if self.tokens else None,
            in_flight=len(self.leases),
        )


class MemoryBackend:
    """All windows of this process, swept of idle scopes once per window length."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # seconds; monotonic, so wall-clock jumps cannot open the window
        self.logs: dict[str, ScopeLog] = {}
        self.next_sweep = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    async def acquire(self, ticket: Ticket) -> Outcome:
        now = self.now_us()
        self._sweep(now)
        logs = [self.logs.setdefault(scope.name, ScopeLog()) for scope in ticket.scopes]
        refusal: tuple[int, int, int] | None = None  # (reason code, scope index, wait)
        for index, (scope, log) in enumerate(zip(ticket.scopes, logs, strict=True)):
            log.trim(now - WINDOW_US)
            found = log.refusal(scope, ticket.tokens, now)
            if found and (refusal is None or longer_wait(found[1], refusal[2])):
                refusal = (found[0], index, found[1])
        if refusal is None:
            for scope, log in zip(ticket.scopes, logs, strict=True):
                log.record(scope, ticket, now)
        states = tuple(log.state() for log in logs)
        if refusal is None:
            return Outcome(allowed=True, now_us=now, states=states)
        return Outcome(allowed=False, now_us=now, states=states, reason=REASONS[refusal[0] - 1],
                       blocked=refusal[1], retry_after_us=refusal[2])

    async def finish(self, ticket: Ticket, used_tokens: int) -> None:
        now = self.now_us()
        for scope in ticket.scopes:
            log = self.logs.get(scope.name)
            if log is None:
                continue
            if scope.tpm is not None and used_tokens != ticket.tokens:
                log.correct(ticket.lease, ticket.tokens, used_tokens, now)
            log.by_lease.pop(ticket.lease, None)
            log.leases.discard(ticket.lease)

    def _sweep(self, now: int) -> None:
        # Idle keys and client IPs would otherwise accumulate for the life of the process.
        if now < self.next_sweep:
            return
        self.next_sweep = now + WINDOW_US
        for name in list(self.logs):
            log = self.logs[name]
            log.trim(now - WINDOW_US)
            if log.empty:
                del self.logs[name]
