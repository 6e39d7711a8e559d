"""Anthropic Messages request → OpenAI Chat Completions request (Anthropic client, OpenAI provider).

``system`` becomes a system message; content blocks become OpenAI parts; a ``tool_use`` block
becomes an assistant ``tool_calls`` entry and a ``tool_result`` block a ``tool`` message, which
OpenAI wants right after the assistant message that called it, so tool results go before the
rest of their user turn. A parameter with no OpenAI equivalent is a 400 naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from onyproxy.errors import invalid_request
from onyproxy.translate.anthropic_tools import (
    to_openai_tool_choice,
    to_openai_tools,
    unsupported,
)

if TYPE_CHECKING:
    from onyproxy.translate import Context

_MAPPED = frozenset({
    "model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k",
    "stop_sequences", "stream", "tools", "tool_choice", "metadata", "output_config",
    "thinking",
})
# Accepted and not forwarded: prompt-caching, capacity and attribution hints that do not change
# the answer.
_IGNORED = frozenset({"cache_control", "service_tier", "inference_geo", "speed",
                      "user_profile_id", "diagnostics"})
_EFFORTS = ("low", "medium", "high", "xhigh", "max")


def to_openai_request(body: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Map a ``/v1/messages`` body to a ``/v1/chat/completions`` body."""
    _refuse_unsupported(body)
    out: dict[str, Any] = {"model": body["model"],
                           "messages": system_messages(body.get("system"))}
    for index, message in enumerate(body.get("messages") or []):
        out["messages"] += openai_messages(message, f"messages.{index}")
    if body.get("max_tokens") is not None:
        if body["max_tokens"] < 1:
            raise unsupported("max_tokens", "0 (cache pre-warming) only exists on Anthropic.")
        # max_completion_tokens is the current name; OpenAI's reasoning models refuse max_tokens.
        out["max_completion_tokens"] = body["max_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    if body.get("stream"):
        out["stream"] = True
    _copy_tools(body, out)
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = user
    _copy_output_config(body.get("output_config"), out)
    return out


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for key in body:
        if key not in _MAPPED and key not in _IGNORED:
            raise invalid_request(f"{key}: Extra inputs are not permitted", param=key)
    if body.get("top_k") is not None:
        raise unsupported("top_k", "OpenAI's Chat Completions API has no top-k sampling.")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled"):
        raise unsupported("thinking", "extended thinking blocks have no OpenAI equivalent.")


def _copy_tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = to_openai_tools(body.get("tools"))
    if not tools:
        return
    out["tools"] = tools
    choice, parallel = to_openai_tool_choice(body.get("tool_choice"))
    if choice is not None:
        out["tool_choice"] = choice
    if parallel is not None:
        out["parallel_tool_calls"] = parallel


def _copy_output_config(config: Any, out: dict[str, Any]) -> None:
    if not isinstance(config, dict):
        return
    fmt = config.get("format")
    if isinstance(fmt, dict):
        if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            raise unsupported("output_config.format", "only json_schema formats map to OpenAI.")
        out["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "output", "schema": fmt["schema"], "strict": True}}
    effort = config.get("effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise unsupported("output_config.effort", f"unknown effort '{effort}'.")
        out["reasoning_effort"] = effort


# -- messages ---------------------------------------------------------------------------------


def system_messages(system: Any) -> list[dict[str, Any]]:
    if isinstance(system, list):
        system = "\n\n".join(b.get("text", "") for b in system if isinstance(b, dict))
    return [{"role": "system", "content": system}] if system else []


def openai_messages(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """One Anthropic turn as one or more OpenAI messages."""
    content = message.get("content")
    role = message.get("role")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    blocks = content if isinstance(content, list) else []
    if role == "assistant":
        return [assistant_message(blocks, f"{where}.content")]
    return user_messages(blocks, f"{where}.content")


def user_messages(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "tool_result":
            tool_messages.append(tool_message(block, f"{where}.{index}"))
        elif kind == "text":
            # cache_control markers are dropped: OpenAI caches long prefixes by itself.
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(image_part(block, f"{where}.{index}"))
        else:
            raise unsupported(f"{where}.{index}.type",
                              f"'{kind}' blocks have no OpenAI Chat Completions equivalent.")
    user = [{"role": "user", "content": _collapse(parts)}] if parts else []
    return tool_messages + user


def _collapse(parts: list[dict[str, Any]]) -> Any:
    """Text-only content as one string, which every OpenAI-compatible server accepts."""
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = source.get("url")
    else:
        raise unsupported(f"{where}.source", f"image sources of type '{source.get('type')}' "
                                             "only exist on Anthropic.")
    return {"type": "image_url", "image_url": {"url": url}}


def tool_message(block: dict[str, Any], where: str) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, list):
        for index, inner in enumerate(content):
            if inner.get("type") != "text":
                raise unsupported(f"{where}.content.{index}.type",
                                  "OpenAI tool messages carry text only.")
        content = "\n".join(inner.get("text", "") for inner in content)
    text = content if isinstance(content, str) else ""
    if block.get("is_error"):
        # OpenAI has no error flag on tool results; keep the signal in the text the model reads.
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def assistant_message(blocks: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"),
                "arguments": orjson.dumps(block.get("input") or {}).decode()}})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # an earlier turn's thinking is Anthropic's own record: nothing to send
        else:
            raise unsupported(f"{where}.{index}.type",
                              f"'{kind}' blocks have no OpenAI Chat Completions equivalent.")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message
