"""The text of a request, per API shape: what may be rewritten before it goes upstream.

Only text the caller wrote or a tool returned is visited: message text, system prompts,
tool-call arguments and tool results. Never image or file data, never tool schemas, and never
thinking blocks, whose signatures the provider checks against the original text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Rewrite = Callable[[str], str]


def rewrite_request(shape: str, body: dict[str, Any], rewrite: Rewrite) -> None:
    """Apply ``rewrite`` to every text field of ``body`` (in the client's ``shape``), in place."""
    walker = _WALKERS.get(shape)
    if walker is not None:
        walker(body, rewrite)


def rewrite_values(value: Any, rewrite: Rewrite) -> Any:
    """Every string inside ``value`` rewritten (dict values and list items; never keys)."""
    if isinstance(value, str):
        return rewrite(value)
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = rewrite_values(item, rewrite)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = rewrite_values(item, rewrite)
    return value


def _field(obj: Any, key: str, rewrite: Rewrite) -> None:
    if isinstance(obj, dict) and isinstance(obj.get(key), str):
        obj[key] = rewrite(obj[key])


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# --- OpenAI Chat Completions and Embeddings ---------------------------------------------------

_OPENAI_PART_TEXT = {"text": "text", "refusal": "refusal"}


def _openai(body: dict[str, Any], rewrite: Rewrite) -> None:
    for message in _dicts(body.get("messages")):
        _openai_content(message, "content", rewrite)
        for call in _dicts(message.get("tool_calls")):
            _field(call.get("function"), "arguments", rewrite)
        _field(message.get("function_call"), "arguments", rewrite)
    if "input" in body:  # embeddings: a string or strings (token arrays are left alone)
        body["input"] = _strings(body["input"], rewrite)


def _openai_content(obj: dict[str, Any], key: str, rewrite: Rewrite) -> None:
    content = obj.get(key)
    if isinstance(content, str):
        obj[key] = rewrite(content)
    for part in _dicts(content):
        name = _OPENAI_PART_TEXT.get(part.get("type", ""))
        if name:
            _field(part, name, rewrite)


def _strings(value: Any, rewrite: Rewrite) -> Any:
    if isinstance(value, str):
        return rewrite(value)
    if isinstance(value, list):
        return [rewrite(v) if isinstance(v, str) else v for v in value]
    return value


# --- OpenAI Responses -------------------------------------------------------------------------

_RESPONSES_PART_TEXT = {"input_text": "text", "output_text": "text", "text": "text",
                        "refusal": "refusal"}


def _responses(body: dict[str, Any], rewrite: Rewrite) -> None:
    _field(body, "instructions", rewrite)
    if isinstance(body.get("input"), str):
        body["input"] = rewrite(body["input"])
    for item in _dicts(body.get("input")):
        kind = item.get("type", "message")
        if kind == "message":
            _responses_content(item, "content", rewrite)
        elif kind == "function_call":
            _field(item, "arguments", rewrite)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            _responses_content(item, "output", rewrite)
        elif kind == "custom_tool_call":
            _field(item, "input", rewrite)


def _responses_content(obj: dict[str, Any], key: str, rewrite: Rewrite) -> None:
    content = obj.get(key)
    if isinstance(content, str):
        obj[key] = rewrite(content)
    for part in _dicts(content):
        name = _RESPONSES_PART_TEXT.get(part.get("type", ""))
        if name:
            _field(part, name, rewrite)


# --- Anthropic Messages -----------------------------------------------------------------------

def _anthropic(body: dict[str, Any], rewrite: Rewrite) -> None:
    if isinstance(body.get("system"), str):
        body["system"] = rewrite(body["system"])
    _anthropic_blocks(body.get("system"), rewrite)
    for message in _dicts(body.get("messages")):
        if isinstance(message.get("content"), str):
            message["content"] = rewrite(message["content"])
        _anthropic_blocks(message.get("content"), rewrite)


def _anthropic_blocks(blocks: Any, rewrite: Rewrite) -> None:
    for block in _dicts(blocks):
        kind = block.get("type")
        if kind == "text":
            _field(block, "text", rewrite)
        elif kind in ("tool_use", "server_tool_use"):
            rewrite_values(block.get("input"), rewrite)
        elif kind == "tool_result":
            if isinstance(block.get("content"), str):
                block["content"] = rewrite(block["content"])
            _anthropic_blocks(block.get("content"), rewrite)
        elif kind == "document":
            _anthropic_document(block.get("source"), rewrite)


def _anthropic_document(source: Any, rewrite: Rewrite) -> None:
    if not isinstance(source, dict):
        return
    if source.get("type") == "text":  # plain-text documents; base64 PDFs are not read
        _field(source, "data", rewrite)
    elif source.get("type") == "content":
        _anthropic_blocks(source.get("content"), rewrite)


# --- Gemini -----------------------------------------------------------------------------------

def _gemini(body: dict[str, Any], rewrite: Rewrite) -> None:
    for content in _dicts(body.get("contents")):
        _gemini_parts(content, rewrite)
    for key in ("systemInstruction", "system_instruction", "content"):
        value = body.get(key)
        if isinstance(value, str):
            body[key] = rewrite(value)
        elif isinstance(value, dict):
            _gemini_parts(value, rewrite)
    for request in _dicts(body.get("requests")):  # batchEmbedContents
        if isinstance(request.get("content"), dict):
            _gemini_parts(request["content"], rewrite)


def _gemini_parts(content: dict[str, Any], rewrite: Rewrite) -> None:
    for part in _dicts(content.get("parts")):
        if part.get("thought"):
            continue
        _field(part, "text", rewrite)
        call = part.get("functionCall") or part.get("function_call")
        if isinstance(call, dict):
            rewrite_values(call.get("args"), rewrite)
        result = part.get("functionResponse") or part.get("function_response")
        if isinstance(result, dict):
            rewrite_values(result.get("response"), rewrite)


_WALKERS: dict[str, Callable[[dict[str, Any], Rewrite], None]] = {
    "openai": _openai,
    "openai-responses": _responses,
    "anthropic": _anthropic,
    "gemini": _gemini,
}
