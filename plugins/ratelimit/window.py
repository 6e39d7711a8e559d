"""The sliding-window-log algorithm's vocabulary, shared by the memory and Redis backends.

Both backends implement the same rules (the Redis one in Lua, see ``lua.py``); the tests run one
suite against both with an injected clock, so the two cannot drift apart.

Rules, with ``W`` = 60 s and times in integer microseconds:

- an entry stamped ``t`` counts while ``now - t < W``; at ``t + W`` it leaves the window;
- requests: allowed while fewer than ``rpm`` entries are in the window;
- tokens: each request adds an entry of its estimated tokens; allowed while the window's sum plus
  the estimate stays within ``tpm``; the entry is corrected to the real usage when the call ends;
- concurrency: a lease per request in flight, removed when the exchange completes;
- every scope of a request is checked first and recorded only if all of them allow it, so a
  rejected request costs no scope anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

WINDOW_US = 60_000_000
NEVER = -1  # retry-after of a request that waiting cannot help (larger than the limit, or 0)
CONCURRENCY_RETRY_US = 1_000_000  # a slot frees when some call ends: unknowable, suggest 1 s
REASONS = ("requests", "tokens", "concurrent")  # why a request was refused, by code 1, 2, 3


class BackendUnavailable(Exception):
    """The shared counter store cannot be reached; ``failure_mode`` decides what happens."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Something limits apply to: a key, an account, a model, a key on a model, a client IP.

    ``name`` is unique per scope and becomes part of the storage key; ``kind`` is one of
    ``key``, ``account``, ``model``, ``key_model``, ``ip``: a bounded metric label.
    """

    name: str
    kind: str
    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.concurrent is not None


@dataclass(slots=True)
class Ticket:
    """One exchange's claim on its scopes: the lease id and the tokens it reserved."""

    lease: str
    scopes: tuple[Scope, ...]
    tokens: int
    finished: bool = False  # on_complete ran: never release twice


@dataclass(frozen=True, slots=True)
class ScopeState:
    """What one scope holds at the decision time (including the new request when allowed)."""

    requests: int = 0
    oldest_request_us: int | None = None
    tokens: int = 0
    oldest_token_us: int | None = None
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """A backend's decision: allowed or why not, and every scope's state for the headers."""

    allowed: bool
    now_us: int
    states: tuple[ScopeState, ...]
    reason: str | None = None  # one of REASONS when refused
    blocked: int | None = None  # index of the scope that refused (the longest wait)
    retry_after_us: int | None = None  # NEVER when waiting cannot help


class Backend(Protocol):
    """Where the windows live. ``acquire`` is atomic across every process sharing it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def acquire(self, ticket: Ticket) -> Outcome: ...

    async def finish(self, ticket: Ticket, used_tokens: int) -> None: ...


def longer_wait(candidate: int, current: int | None) -> bool:
    """Whether ``candidate`` is a longer wait than ``current``; NEVER is the longest of all."""
    if current is None:
        return True
    if current == NEVER:
        return False
    return candidate == NEVER or candidate > current
