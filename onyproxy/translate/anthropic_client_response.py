"""OpenAI ``chat.completion`` → Anthropic Message (Anthropic client, OpenAI provider)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import orjson

from onyproxy.errors import GatewayError

if TYPE_CHECKING:
    from onyproxy.translate import Context

# OpenAI does not say which stop sequence ended the answer, nor whether one did: "stop" is
# reported as Anthropic's natural end.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish: str | None) -> str:
    return STOP_REASONS.get(finish or "stop", "end_turn")


def message_id(openai_id: Any) -> str:
    """An Anthropic-style id that keeps the provider's id visible for correlation."""
    if isinstance(openai_id, str) and openai_id:
        return "msg_" + openai_id.removeprefix("chatcmpl-")
    return "msg_" + uuid.uuid4().hex[:24]


def anthropic_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    """OpenAI usage → Anthropic usage, whose ``input_tokens`` excludes cache reads."""
    usage = usage or {}
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {"input_tokens": max(0, int(usage.get("prompt_tokens") or 0) - cached),
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached}


def tool_input(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments (a JSON string) as the object Anthropic's ``input`` must be."""
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise GatewayError(502, "api_error", "The provider returned tool-call arguments that "
                           "are not a JSON object.", code="upstream_invalid_tool_call")
    return parsed


def to_anthropic_response(answer: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Map a ``/v1/chat/completions`` answer to a ``/v1/messages`` answer."""
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content") or message.get("refusal")
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
                        "input": tool_input(function.get("arguments"))})
    reason = "refusal" if message.get("refusal") else stop_reason(choice.get("finish_reason"))
    return {
        "id": message_id(answer.get("id")),
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": None,
        "usage": anthropic_usage(answer.get("usage")),
    }
