"""The ``x-ratelimit-*`` and ``retry-after`` headers, in the formats OpenAI's API uses.

With several scopes on one request (key, account, model...), each header pair reports the
scope closest to its limit, so a client that reads them paces itself by the one that binds.
``reset`` is the time until the oldest counted entry leaves the window, i.e. until
``remaining`` grows again; ``0s`` when nothing is counted.
"""

from __future__ import annotations

import math

from plugins.ratelimit.window import NEVER, WINDOW_US, Outcome, Scope


def rate_headers(scopes: tuple[Scope, ...], outcome: Outcome) -> dict[str, str]:
    """The six ``x-ratelimit-*`` headers (those of a kind no scope limits are left out)."""
    headers: dict[str, str] = {}
    pairs = list(zip(scopes, outcome.states, strict=True))
    requests = [(s.rpm, st.requests, st.oldest_request_us) for s, st in pairs
                if s.rpm is not None]
    tokens = [(s.tpm, st.tokens, st.oldest_token_us) for s, st in pairs if s.tpm is not None]
    for kind, candidates in (("requests", requests), ("tokens", tokens)):
        if candidates:
            limit, remaining, reset_us = _tightest(candidates, outcome.now_us)
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
            headers[f"x-ratelimit-reset-{kind}"] = format_duration(reset_us)
    return headers


def _tightest(candidates: list[tuple[int, int, int | None]],
              now_us: int) -> tuple[int, int, int]:
    """``(limit, remaining, reset µs)`` of the scope with the least left (then longest reset)."""
    rows = []
    for limit, used, oldest in candidates:
        reset = 0 if oldest is None else max(0, oldest + WINDOW_US - now_us)
        rows.append((max(0, limit - used), -reset, limit))
    remaining, negative_reset, limit = min(rows)
    return limit, remaining, -negative_reset


def retry_headers(retry_after_us: int | None) -> dict[str, str]:
    """``retry-after`` in whole seconds (rounded up), and ``retry-after-ms``, which OpenAI's
    SDKs prefer; none when waiting cannot help."""
    if retry_after_us is None or retry_after_us == NEVER:
        return {}
    wait_us = max(retry_after_us, 1000)
    return {"retry-after": str(max(1, math.ceil(wait_us / 1_000_000))),
            "retry-after-ms": str(math.ceil(wait_us / 1000))}


def format_duration(us: int) -> str:
    """A duration as OpenAI writes it (Go's style): ``12ms``, ``1.5s``, ``6m0s``, ``1h0m0s``."""
    ms = math.ceil(us / 1000) if us > 0 else 0
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{minutes}m{seconds}"
    return seconds
