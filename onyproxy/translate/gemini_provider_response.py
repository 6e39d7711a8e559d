"""Gemini ``GenerateContentResponse`` -> OpenAI ``chat.completion`` (a Gemini provider).

Text parts become the message content, ``functionCall`` parts become ``tool_calls`` (ids made up
here: Gemini matches results by name), thought parts are left out (they are not the answer; their
tokens still count as reasoning). A thought signature rides along as Google's OpenAI-compatible
API carries it, in ``extra_content.google.thought_signature``, so a replayed call keeps it.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from onyproxy.translate import Context
from onyproxy.translate.gemini_common import (
    new_call_id,
    openai_finish_reason,
    openai_usage,
    pick,
)

ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def to_openai(body: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The ``chat.completion`` for a Gemini answer, one choice per candidate."""
    candidates = pick(body, "candidates", [])
    choices = [choice(candidate, position) for position, candidate in enumerate(candidates)]
    if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
        choices = [{"index": 0, "message": message(None, []), "logprobs": None,
                    "finish_reason": "content_filter"}]
    return {
        "id": completion_id(body),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": ctx.model,
        "choices": choices,
        "usage": openai_usage(pick(body, "usageMetadata")) or ZERO_USAGE,
    }


def completion_id(body: dict[str, Any]) -> str:
    response_id = pick(body, "responseId")
    return f"chatcmpl-{response_id or secrets.token_hex(12)}"


def choice(candidate: dict[str, Any], position: int) -> dict[str, Any]:
    text, calls = split_parts(candidate)
    reason = openai_finish_reason(pick(candidate, "finishReason"), bool(calls))
    return {"index": pick(candidate, "index", position), "message": message(text, calls),
            "logprobs": None, "finish_reason": reason or "stop"}


def message(text: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None,
                           "annotations": []}
    if calls:
        out["tool_calls"] = calls
    return out


def split_parts(candidate: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """(answer text or None, tool calls) of a candidate's parts."""
    parts = pick(pick(candidate, "content"), "parts", [])
    texts = [p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")]
    calls = [tool_call(p) for p in parts if pick(p, "functionCall") is not None]
    return ("".join(texts) if texts else None), calls


def tool_call(part: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI tool call for a ``functionCall`` part (arguments as a JSON string)."""
    call = pick(part, "functionCall")
    out: dict[str, Any] = {
        "id": new_call_id(),
        "type": "function",
        "function": {"name": call.get("name", ""),
                     "arguments": orjson.dumps(pick(call, "args", {})).decode()},
    }
    signature = pick(part, "thoughtSignature")
    if signature:
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out
