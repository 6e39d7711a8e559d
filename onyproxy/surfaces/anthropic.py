"""The Anthropic surface: ``POST /v1/messages`` request validation.

Messages read like the Anthropic API's own (``max_tokens: Field required``), since Anthropic's
error shape has no ``param`` field: the message names the parameter. Headers are not checked:
current SDKs send ``x-api-key`` or ``Authorization: Bearer`` and an ``anthropic-version``, and
the auth plugin reads the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from onyproxy.errors import invalid_request
from onyproxy.surfaces.base import Operation

_UNIT_RANGE = ("temperature", "top_p")  # both 0..1 in Anthropic's API


def parse_messages(body: dict[str, Any], request: web.Request) -> tuple[str, bool]:
    """Validate a Messages request; return (model, stream)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("model", "Field required" if model is None else "Input should be a "
                                                                       "valid string")
    _check_int(body, "max_tokens", required=True)
    _check_messages(body.get("messages"))
    _check_system(body.get("system"))
    for name in _UNIT_RANGE:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value <= 1):
            raise _invalid(name, "Input should be a number between 0 and 1")
    _check_int(body, "top_k", required=False)
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list)
                              or not all(isinstance(s, str) for s in stops)):
        raise _invalid("stop_sequences", "Input should be a valid list of strings")
    for name, kind, described in (("tools", list, "list"), ("tool_choice", dict, "dictionary"),
                                  ("metadata", dict, "dictionary")):
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise _invalid(name, f"Input should be a valid {described}")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise _invalid("stream", "Input should be a valid boolean")
    return model, bool(stream)


def _invalid(where: str, problem: str):
    return invalid_request(f"{where}: {problem}", param=where)


def _check_int(body: dict[str, Any], name: str, *, required: bool) -> None:
    value = body.get(name)
    if value is None:
        if required:
            raise _invalid(name, "Field required")
        return
    # 0 is valid for max_tokens: Anthropic uses it to pre-warm the prompt cache.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid(name, "Input should be a valid integer greater than or equal to 0")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages", "Field required" if messages is None else
                       "Input should be a non-empty list")
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _invalid(f"{where}.role", "Input should be 'user' or 'assistant'")
        _check_content(message.get("content"), f"{where}.content")


def _check_content(content: Any, where: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid(where, "Input should be a valid string or list of content blocks")
    for index, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _invalid(f"{where}.{index}", "Input should be a content block with a 'type'")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list) or not all(
            isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
            for b in system):
        raise _invalid("system", "Input should be a valid string or list of text blocks")


@dataclass(frozen=True, slots=True)
class MessagesOperation(Operation):
    """Anthropic streams always end with usage, so the hub's OpenAI stream must carry it."""

    def wants_usage_chunk(self, body: dict[str, Any]) -> bool:
        return True


MESSAGES = MessagesOperation(surface="anthropic", shape="anthropic", name="chat",
                             parse=parse_messages)
