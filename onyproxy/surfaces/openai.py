"""The OpenAI surface: ``/v1/chat/completions`` and ``/v1/embeddings`` request validation.

Validation checks what the gateway relies on and what would otherwise fail obscurely upstream;
it does not try to mirror every rule of OpenAI's schema.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from onyproxy.errors import invalid_request
from onyproxy.surfaces.base import Operation

_NUMBERS = {"temperature": (0, 2), "top_p": (0, 1), "presence_penalty": (-2, 2),
            "frequency_penalty": (-2, 2)}
_POSITIVE_INTS = ("max_tokens", "max_completion_tokens", "n")


def parse_chat(body: dict[str, Any], request: web.Request) -> tuple[str, bool]:
    """Validate a Chat Completions request; return (model, stream)."""
    model = require_model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("'messages' must be a non-empty array of message objects.",
                              param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise invalid_request(f"'messages[{index}]' must be an object with a 'role'.",
                                  param=f"messages[{index}]")
    for name, (low, high) in _NUMBERS.items():
        check_number(body, name, low, high)
    for name in _POSITIVE_INTS:
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 1):
            raise invalid_request(f"'{name}' must be a positive integer.", param=name)
    check_type(body, "tools", list, "an array")
    check_type(body, "stream_options", dict, "an object")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, (str, list)):
        raise invalid_request("'stop' must be a string or an array of strings.", param="stop")
    return model, check_stream(body)


def parse_embeddings(body: dict[str, Any], request: web.Request) -> tuple[str, bool]:
    """Validate an Embeddings request; return (model, False)."""
    model = require_model(body)
    value = body.get("input")
    if isinstance(value, str):
        ok = bool(value)
    elif isinstance(value, list):
        ok = bool(value) and all(isinstance(v, (str, int, list)) for v in value)
    else:
        ok = False
    if not ok:
        raise invalid_request("'input' must be a non-empty string or array.", param="input")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise invalid_request("'encoding_format' must be 'float' or 'base64'.",
                              param="encoding_format")
    return model, False


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("'model' is required and must be a string.", param="model")
    return model


def check_stream(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise invalid_request("'stream' must be a boolean.", param="stream")
    return stream


def check_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise invalid_request(f"'{name}' must be a number from {low} to {high}.", param=name)


def check_type(body: dict[str, Any], name: str, kind: type, described: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise invalid_request(f"'{name}' must be {described}.", param=name)


CHAT = Operation(surface="openai", shape="openai", name="chat", parse=parse_chat)
EMBEDDINGS = Operation(surface="openai", shape="openai", name="embeddings",
                       parse=parse_embeddings)
