"""The OpenAI Responses surface: ``POST /v1/responses`` request validation.

Errors use OpenAI's shape (surface ``openai``); the request and answer use the Responses shape
(``openai-responses``), which OpenAI targets speak natively and every other target reaches
through Chat Completions (see :mod:`onyproxy.translate.responses`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from onyproxy.errors import invalid_request
from onyproxy.surfaces.base import Operation
from onyproxy.surfaces.openai import check_number, check_stream, check_type, require_model

# A request may leave 'input' out when OpenAI holds the context (stored response, conversation,
# stored prompt); for any other target the translation refuses those with its own 400.
_CONTEXT_PARAMS = ("previous_response_id", "conversation", "prompt")


def parse_responses(body: dict[str, Any], request: web.Request) -> tuple[str, bool]:
    """Validate a Responses request; return (model, stream)."""
    model = require_model(body)
    _check_input(body)
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid_request("'instructions' must be a string.", param="instructions")
    check_number(body, "temperature", 0, 2)
    check_number(body, "top_p", 0, 1)
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise invalid_request("'max_output_tokens' must be a positive integer.",
                              param="max_output_tokens")
    check_type(body, "tools", list, "an array")
    check_type(body, "text", dict, "an object")
    check_type(body, "reasoning", dict, "an object")
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, (str, dict)):
        raise invalid_request("'tool_choice' must be a string or an object.",
                              param="tool_choice")
    return model, check_stream(body)


def _check_input(body: dict[str, Any]) -> None:
    value = body.get("input")
    if value is None:
        if any(body.get(name) for name in _CONTEXT_PARAMS):
            return
        raise invalid_request("'input' is required: a string or an array of input items.",
                              param="input")
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not value:
        raise invalid_request("'input' must be a string or a non-empty array of input items.",
                              param="input")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid_request(f"'input[{index}]' must be an object.",
                                  param=f"input[{index}]")


@dataclass(frozen=True, slots=True)
class ResponsesOperation(Operation):
    """A Responses call: its final event always carries the usage."""

    def wants_usage_chunk(self, body: dict[str, Any]) -> bool:
        # Tells hub translators to keep Chat's usage chunk: response.completed is built from it.
        return True


RESPONSES = ResponsesOperation(surface="openai", shape="openai-responses", name="chat",
                               parse=parse_responses)
