"""Bounds on what a client sends, checked before any of it is logged or re-encoded.

orjson parses up to 1024 levels of nesting but encodes at most 255, so a deeply nested body
would pass the parser and crash the answer; it is refused at parse time instead. Names the
client chooses (the model) reach log lines and metric labels, so an absurd one is refused before
either sees it; the user agent is only ever stored cut short.
"""

from __future__ import annotations

from typing import Any

from onyproxy.errors import invalid_request

MAX_DEPTH = 64
MAX_MODEL_CHARS = 256
MAX_USER_AGENT_CHARS = 256


def check_depth(raw: bytes, body: Any) -> None:
    """A 400 when ``body`` nests objects and arrays deeper than :data:`MAX_DEPTH`."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return  # too few brackets to be that deep: the common case costs two byte scans
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise invalid_request(f"The request body nests objects and arrays deeper than "
                                  f"{MAX_DEPTH} levels.", code="json_too_deep")
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))


def check_model(model: str) -> None:
    """A 400 for a model name longer than any real one (never echoed back)."""
    if len(model) > MAX_MODEL_CHARS:
        raise invalid_request(f"The model name is longer than {MAX_MODEL_CHARS} characters.",
                              param="model", code="model_too_long")


def user_agent(value: str | None) -> str | None:
    """The client's user agent, cut to :data:`MAX_USER_AGENT_CHARS`."""
    return value[:MAX_USER_AGENT_CHARS] if value is not None else None
