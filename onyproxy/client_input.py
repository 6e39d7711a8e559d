"""Bounds on what a client sends, checked before any of it is logged or re-encoded.

orjson parses up to 1024 levels of nesting but encodes at most 255, so a deeply nested body
would pass the parser and crash the answer; it is refused at parse time instead. Names the
client chooses (the model) reach log lines and metric labels, so an absurd one is refused before
either sees it; the user agent is only ever stored cut short.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError

from onyproxy.errors import invalid_request

MAX_DEPTH = 64
MAX_MODEL_CHARS = 256
MAX_USER_AGENT_CHARS = 256
# aiohttp decodes these itself (br and zstd only with optional packages, so not promised).
DECODED = frozenset({"identity", "gzip", "deflate", "x-gzip"})


async def read_raw(request: web.Request) -> bytes:
    """The body, decoded; a 400 for a Content-Encoding aiohttp does not decode or a body that
    does not match it (``HTTPRequestEntityTooLarge`` is left to the caller)."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in DECODED:
        raise invalid_request("The request body's Content-Encoding must be gzip, deflate or "
                              "identity.", code="unsupported_content_encoding")
    try:
        return await request.read()
    except (ContentEncodingError, RequestPayloadError):
        raise invalid_request("The request body does not match its Content-Encoding.",
                              code="bad_content_encoding") from None


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
