"""Chat Completions answer → OpenAI Responses ``response`` object (a Responses client).

The object follows the ``Response`` schema of OpenAI's API reference: ``output`` holds a
``message`` item (``output_text`` parts) and one ``function_call`` item per tool call, in that
order; ``usage`` uses the Responses names. Request settings the client sent are echoed back
as OpenAI does; ``model`` is the name the client asked for.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onyproxy.translate import Context

# Chat finish reasons that mean the answer was cut short, as Responses names the reason.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (``resp_…``, ``msg_…``, ``fc_…``)."""
    return f"{prefix}_{secrets.token_hex(24)}"


def to_responses_response(chat: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Map a ``chat.completion`` object to a ``response`` object."""
    choices = chat.get("choices") or [{}]
    choice = choices[0]
    reason = INCOMPLETE.get(choice.get("finish_reason") or "")
    item_status = "incomplete" if reason else "completed"
    output = output_items(choice.get("message") or {}, item_status)
    return envelope(ctx, response_id=new_id("resp"), created_at=chat.get("created"),
                    status=item_status, output=output, usage=responses_usage(chat.get("usage")),
                    incomplete_reason=reason)


def output_items(message: dict[str, Any], status: str) -> list[dict[str, Any]]:
    """The assistant message as Responses output items: text first, then function calls."""
    items: list[dict[str, Any]] = []
    parts = []
    if message.get("content"):
        parts.append(output_text(message["content"]))
    if message.get("refusal"):
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts:
        items.append(message_item(new_id("msg"), parts, status))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        items.append(function_call_item(new_id("fc"), call.get("id") or new_id("call"),
                                        function.get("name", ""),
                                        function.get("arguments") or "", "completed"))
    return items


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, content: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": content}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str,
                       status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "arguments": arguments,
            "call_id": call_id, "name": name}


def responses_usage(raw: Any) -> dict[str, Any] | None:
    """Chat usage under the Responses names, token details included."""
    if not isinstance(raw, dict):
        return None
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    details_in = raw.get("prompt_tokens_details") or {}
    details_out = raw.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(details_in.get("cached_tokens") or 0),
                                 "cache_write_tokens":
                                     int(details_in.get("cache_write_tokens") or 0)},
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": int(details_out.get("reasoning_tokens") or 0)},
        "total_tokens": int(raw.get("total_tokens") or prompt + completion),
    }


def envelope(ctx: Context, *, response_id: str, created_at: Any, status: str,
             output: list[dict[str, Any]], usage: dict[str, Any] | None,
             incomplete_reason: str | None = None) -> dict[str, Any]:
    """The whole ``response`` object around ``output``, echoing the client's settings."""
    req = ctx.request
    reasoning = req.get("reasoning") or {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at if isinstance(created_at, int) else int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "max_tool_calls": req.get("max_tool_calls"),
        "model": ctx.model,
        "output": output,
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": None},
        "store": False,  # the gateway keeps no responses
        "temperature": req.get("temperature"),
        "text": _text_config(req.get("text")),
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": req.get("tools") or [],
        "top_p": req.get("top_p"),
        "truncation": req.get("truncation") or "disabled",
        "usage": usage,
        "user": req.get("user"),
        "metadata": req.get("metadata") or {},
    }


def _text_config(text: Any) -> dict[str, Any]:
    text = text if isinstance(text, dict) else {}
    return {"format": text.get("format") or {"type": "text"},
            "verbosity": text.get("verbosity") or "medium"}
