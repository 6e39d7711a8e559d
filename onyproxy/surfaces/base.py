"""What a client-facing operation tells the proxy flow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

# Reads a parsed body (and the request, for URL parts) and returns (model, stream); raises a
# GatewayError naming the offending parameter.
Parser = Callable[[dict[str, Any], web.Request], tuple[str, bool]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One client-facing endpoint: its error surface, request shape and validation."""

    surface: str  # error shape: openai | anthropic | gemini
    shape: str  # request/response shape: openai | openai-responses | anthropic | gemini
    name: str  # chat | embeddings
    parse: Parser

    def wants_usage_chunk(self, body: dict[str, Any]) -> bool:
        """OpenAI streams carry the usage chunk only when the client asked for it."""
        options = body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True
