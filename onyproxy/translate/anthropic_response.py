"""Anthropic Message → OpenAI ``chat.completion`` (OpenAI client, Anthropic provider).

The answer must validate against OpenAI's published schema: ``object``, ``created``,
``choices[].message`` with ``role``, ``content`` and ``refusal``, ``choices[].logprobs`` (null)
and a ``finish_reason`` from OpenAI's enum.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from onyproxy.translate import Context

# Anthropic stop_reason → OpenAI finish_reason. ``pause_turn`` only follows Anthropic server
# tools, which this translation never sends; it is a plain stop for an OpenAI client.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "end_turn", "stop")


def openai_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    """Anthropic usage → OpenAI usage.

    Anthropic's ``input_tokens`` excludes cache reads and writes; OpenAI's ``prompt_tokens``
    counts every input token, with the cached share in ``prompt_tokens_details``.
    """
    usage = usage or {}
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + \
        int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` block as an OpenAI tool call; arguments are a JSON string there."""
    return {"id": block.get("id"), "type": "function",
            "function": {"name": block.get("name"),
                         "arguments": orjson.dumps(block.get("input") or {}).decode()}}


def to_openai_response(message: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Map a ``/v1/messages`` answer to a ``/v1/chat/completions`` answer."""
    blocks = message.get("content") or []
    # Thinking blocks only appear when thinking was asked for, which OpenAI requests cannot do.
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = [tool_call(b) for b in blocks if b.get("type") == "tool_use"]
    reply: dict[str, Any] = {"role": "assistant",
                             "content": text if text or not calls else None,
                             "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": message.get("id") or "",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": ctx.model,
        "choices": [{"index": 0, "message": reply, "logprobs": None,
                     "finish_reason": finish_reason(message.get("stop_reason"))}],
        "usage": openai_usage(message.get("usage")),
    }
