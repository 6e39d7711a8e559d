"""The per-request object every plugin hook receives."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from onyproxy.config.model import TargetConfig
from onyproxy.errors import GatewayError


@dataclass(slots=True)
class Usage:
    """Tokens of one exchange, as the provider reported them (or as estimated)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    reported: bool = False  # the provider sent usage; False means counts are estimates or zero
    # Uses of provider-run tools billed per use, by feature name ("web_search": 3); priced
    # from the catalog's per-use prices.
    server_tool_uses: dict[str, int] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Attempt:
    """One try at one target; the Exchange keeps all of them, in order."""

    provider: str
    model: str
    started: float
    duration_s: float = 0.0
    status: int | None = None
    error: str | None = None  # error type, never a message that might echo content


@dataclass(slots=True)
class Identity:
    """Who is calling, as established by the auth plugin."""

    account_id: str
    key_id: str | None = None
    role: str = "user"
    limits: dict[str, Any] = field(default_factory=dict)
    allowed_models: list[str] | None = None
    allowed_regions: list[str] | None = None


@dataclass(slots=True)
class RoutePolicy:
    """How the forwarder treats the targets: retries per target, timeout, backoff.

    ``may_retry(target)`` is asked before each retry of a target (never before a first try or
    a fallback); ``False`` moves on to the next target. A retry budget or a circuit breaker
    answers it, so that an outage does not multiply the load on the failing upstream.
    """

    retries: int = 0
    timeout_s: float = 600.0
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0
    may_retry: Callable[[TargetConfig], bool] | None = None


@dataclass(slots=True)
class Exchange:
    """One client request and its answer, shared by the core and every plugin.

    ``body`` is the client's parsed request in the shape of its ``surface``; request-side plugins
    may change it (e.g. mask PII). ``targets`` starts as the model's targets in config order; a
    routing plugin may reorder or filter it. ``state`` holds each plugin's own data under its
    name. Nothing here may be written anywhere as-is: ``body`` holds prompt text.
    """

    request_id: str
    surface: str  # "openai" | "anthropic" | "gemini": whose error shape the client expects
    shape: str  # the request's API shape: a surface name or "openai-responses"
    operation: str  # "chat" | "embeddings" | "responses" | "messages" | "generate" | "embed"
    path: str
    headers: Any  # the client's request headers (case-insensitive mapping)
    query: Any
    # The client's address: the TCP peer, or behind a trusted proxy the forwarded hop it
    # vouches for (onyproxy.client_address), resolved once by the core for every plugin.
    client_ip: str | None
    user_agent: str | None
    body: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    stream: bool = False
    targets: list[TargetConfig] = field(default_factory=list)
    # Set only by operations that list models (GET /v1/models): every model the caller might
    # use, with its targets. A plugin that limits models or targets narrows this mapping
    # instead of refusing; the models left with a target are the answer.
    listing: dict[str, list[TargetConfig]] | None = None
    policy: RoutePolicy = field(default_factory=RoutePolicy)
    identity: Identity | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal | None = None
    attempts: list[Attempt] = field(default_factory=list)
    # Called by the forwarder as each attempt ends (not when cancelled), so plugins such as
    # routing's circuit breaker learn from every try while the exchange is still running.
    on_attempt: list[Callable[[Attempt], None]] = field(default_factory=list)
    provider: str | None = None  # the provider that answered
    provider_model: str | None = None
    status: int = 0
    error: GatewayError | None = None
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    first_token_at: float | None = None
    ended: float | None = None
    response: dict[str, Any] | None = None  # the non-stream answer, in the client's shape
    response_raw: bytes | None = None  # its bytes; a plugin that edits ``response`` clears this
    response_headers: dict[str, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def latency_s(self) -> float:
        end = self.ended if self.ended is not None else time.monotonic()
        return end - self.started

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started
