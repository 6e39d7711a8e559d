"""Render a :class:`GatewayError` in the error shape of the API the client called.

One small function per surface; the handlers never branch on the surface themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onyproxy.errors import GatewayError
from onyproxy.sse import Event

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# google.rpc.Code names, as the Gemini API puts them in error.status.
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def render_openai(err: GatewayError) -> dict[str, Any]:
    """OpenAI: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": err.message, "type": err.type, "param": err.param,
                      "code": err.code}}


def render_anthropic(err: GatewayError) -> dict[str, Any]:
    """Anthropic: ``{"type": "error", "error": {"type", "message"}}``."""
    kind = _ANTHROPIC_TYPES.get(err.status, "api_error" if err.status >= 500
                                else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": err.message}}


def render_gemini(err: GatewayError) -> dict[str, Any]:
    """Gemini: ``{"error": {"code", "message", "status"}}``."""
    status = _GEMINI_STATUS.get(err.status, "INTERNAL" if err.status >= 500 else "INVALID_ARGUMENT")
    return {"error": {"code": err.status, "message": err.message, "status": status}}


RENDERERS: dict[str, Callable[[GatewayError], dict[str, Any]]] = {
    "openai": render_openai,
    "anthropic": render_anthropic,
    "gemini": render_gemini,
}


def render(surface: str, err: GatewayError) -> dict[str, Any]:
    """The JSON body for ``err`` on ``surface`` (OpenAI's shape for anything unknown)."""
    return RENDERERS.get(surface, render_openai)(err)


def stream_error_event(surface: str, err: GatewayError) -> Event:
    """The event that ends a stream which failed after it started, in the surface's format."""
    if surface == "anthropic":
        return Event.of(render_anthropic(err), "error")
    return Event.of(render(surface, err))


def surface_of_path(path: str) -> str:
    """Which API shape a path belongs to, for errors raised before any handler ran."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1beta/") or ":generateContent" in path or \
            ":streamGenerateContent" in path or ":embedContent" in path or \
            ":batchEmbedContents" in path:
        return "gemini"
    return "openai"
