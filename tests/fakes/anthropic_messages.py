"""Pure shape logic of the fake Anthropic Messages API: checks and answers.

Request checks follow the real API closely enough to catch gateway translation
bugs (missing ``max_tokens``, ``temperature`` above 1, unknown block types,
``tool_result`` blocks without their ``tool_use``). Answers come from
``echo_model``; ``anthropic_upstream`` streams the finished message, so the
streamed and non-streamed answers to one request agree.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from .echo_model import (
    cities_in,
    count_tokens,
    cut,
    reply_to,
    sample_value,
    tool_arguments,
    wants_tool,
)

BLOCK_TYPES = frozenset(
    {
        "text",
        "image",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "search_result",
        "server_tool_use",
        "web_search_tool_result",
    }
)
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
STOP_REASONS = {"end": "end_turn", "max_tokens": "max_tokens", "stop_sequence": "stop_sequence"}
TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})


class InvalidRequest(ValueError):
    """The request breaks a rule the real API enforces (answered as 400)."""


def new_id(prefix: str) -> str:
    """An id in the style of the real API (``msg_01...``, ``toolu_01...``)."""
    return f"{prefix}01{secrets.token_hex(11)}"


# -- checks -------------------------------------------------------------------------


def validate_request(body: Any, *, needs_max_tokens: bool = True) -> dict[str, Any]:
    """Return ``body`` when it is a valid Messages request, else raise InvalidRequest."""
    if not isinstance(body, dict):
        raise InvalidRequest("body: Input should be a valid dictionary")
    if not isinstance(body.get("model"), str):
        raise InvalidRequest("model: Field required")
    if needs_max_tokens:
        _check_max_tokens(body.get("max_tokens"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Field required")
    _check_system(body.get("system"))
    _check_temperature(body.get("temperature"))
    _check_thinking(body.get("thinking"), body.get("max_tokens"))
    for index, message in enumerate(messages):
        _check_message(index, message)
    _check_tool_pairs(messages)
    _check_tools(body.get("tools"), body.get("tool_choice"))
    return body


def _check_max_tokens(value: Any) -> None:
    if value is None:
        raise InvalidRequest("max_tokens: Field required")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest("max_tokens: Input should be a valid integer greater than 0")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list) or any(
        not isinstance(b, dict) or b.get("type") != "text" or not isinstance(b.get("text"), str)
        for b in system
    ):
        raise InvalidRequest("system: Input should be a valid string or a list of text blocks")


def _check_temperature(value: Any) -> None:
    # OpenAI allows 0..2, Anthropic 0..1: a classic translation bug to catch.
    if value is not None and not (isinstance(value, int | float) and 0 <= value <= 1):
        raise InvalidRequest("temperature: range: 0..1")


def _check_thinking(thinking: Any, max_tokens: Any) -> None:
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        raise InvalidRequest(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        )
    if isinstance(max_tokens, int) and max_tokens <= budget:
        raise InvalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`")


def _check_message(index: int, message: Any) -> None:
    where = f"messages.{index}"
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise InvalidRequest(f"{where}.role: Input should be 'user' or 'assistant'")
    content = message.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content: Input should be a valid list")
    for position, block in enumerate(content):
        _check_block(f"{where}.content.{position}", block)


def _check_block(where: str, block: Any) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in BLOCK_TYPES:
        raise InvalidRequest(
            f"{where}: Input tag '{kind}' found using 'type' does not match any of the "
            f"expected tags: {', '.join(sorted(BLOCK_TYPES))}"
        )
    if kind == "text" and not isinstance(block.get("text"), str):
        raise InvalidRequest(f"{where}.text: Field required")
    if kind == "image":
        _check_image_source(where, block.get("source"))
    if kind == "tool_use" and not (block.get("id") and block.get("name")):
        raise InvalidRequest(f"{where}: tool_use blocks need an id and a name")
    if kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise InvalidRequest(f"{where}.tool_use_id: Field required")
        inner = block.get("content")
        if isinstance(inner, list):
            for position, sub in enumerate(inner):
                _check_block(f"{where}.content.{position}", sub)


def _check_image_source(where: str, source: Any) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        if source.get("media_type") not in IMAGE_MEDIA_TYPES or not source.get("data"):
            raise InvalidRequest(
                f"{where}.source.base64.media_type: Input should be "
                "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
            )
    elif kind == "url":
        if not isinstance(source.get("url"), str):
            raise InvalidRequest(f"{where}.source.url.url: Field required")
    elif kind != "file":
        raise InvalidRequest(f"{where}.source: Input tag '{kind}' does not match base64, url, file")


def _check_tool_pairs(messages: list[dict[str, Any]]) -> None:
    """Each tool_use must be answered by a tool_result in the very next message."""
    for index, message in enumerate(messages):
        results = _block_ids(message, "tool_result", "tool_use_id")
        if results and message["role"] == "user":
            offered = _block_ids(messages[index - 1], "tool_use", "id") if index else set()
            unexpected = sorted(results - offered)
            if unexpected:
                raise InvalidRequest(
                    f"messages.{index}.content: unexpected `tool_use_id` found in "
                    f"`tool_result` blocks: {', '.join(unexpected)}. Each `tool_result` block "
                    "must have a corresponding `tool_use` block in the previous message."
                )
        uses = _block_ids(message, "tool_use", "id")
        if uses and index + 1 < len(messages):
            missing = sorted(uses - _block_ids(messages[index + 1], "tool_result", "tool_use_id"))
            if missing:
                raise InvalidRequest(
                    f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have "
                    "a corresponding `tool_result` block in the next message."
                )


def _block_ids(message: dict[str, Any], kind: str, key: str) -> set[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return set()
    return {b[key] for b in content if b.get("type") == kind and isinstance(b.get(key), str)}


def _check_tools(tools: Any, tool_choice: Any) -> None:
    for index, tool in enumerate(tools or []):
        custom = not isinstance(tool, dict) or tool.get("type") in (None, "custom")
        if custom and not (isinstance(tool, dict) and tool.get("name") and "input_schema" in tool):
            raise InvalidRequest(f"tools.{index}.custom.input_schema: Field required")
    if tool_choice is None:
        return
    if not isinstance(tool_choice, dict) or tool_choice.get("type") not in TOOL_CHOICES:
        raise InvalidRequest("tool_choice: Input tag does not match 'auto', 'any', 'tool', 'none'")
    if tool_choice["type"] == "tool" and not tool_choice.get("name"):
        raise InvalidRequest("tool_choice.tool.name: Field required")


# -- answers ------------------------------------------------------------------------


def build_message(body: dict[str, Any], cache: set[str]) -> dict[str, Any]:
    """The full non-stream Message for a valid request; ``cache`` holds cached prefixes."""
    prompt, after_tools = last_user_turn(body["messages"])
    calls = _tool_calls(body, prompt, after_tools)
    if calls:
        content: list[dict[str, Any]] = calls
        stop_reason, stop_sequence = "tool_use", None
        output = sum(count_tokens(json.dumps(c["input"])) + 1 for c in calls)
    else:
        result = cut(_reply(body, prompt), body.get("stop_sequences") or [], body["max_tokens"])
        content = [{"type": "text", "text": result.text}]
        stop_reason, stop_sequence = STOP_REASONS[result.reason], result.stop_sequence
        output = max(1, count_tokens(result.text))
    thinking = _thinking_blocks(body, prompt)
    output += sum(count_tokens(block["thinking"]) for block in thinking)
    searches = _web_searches(body, prompt)
    usage = {**input_usage(body, cache), "output_tokens": output}
    if any(_is_server_tool(t) for t in body.get("tools") or []):
        usage["server_tool_use"] = {"web_search_requests": len(searches) // 2,
                                    "web_fetch_requests": 0}
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [*thinking, *searches, *content],
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    }


def _is_server_tool(tool: dict[str, Any]) -> bool:
    return str(tool.get("type") or "").startswith(("web_search_", "web_fetch_"))


def _web_searches(body: dict[str, Any], prompt: str) -> list[dict[str, Any]]:
    """With a web_search tool: one search (two when the prompt says "twice", at most
    ``max_uses``), each a ``server_tool_use`` block and its ``web_search_tool_result``."""
    tool = next((t for t in body.get("tools") or []
                 if str(t.get("type") or "").startswith("web_search_")), None)
    if tool is None:
        return []
    count = min(2 if "twice" in prompt else 1, tool.get("max_uses") or 2)
    blocks: list[dict[str, Any]] = []
    for number in range(count):
        call_id = new_id("srvtoolu_")
        blocks.append({"type": "server_tool_use", "id": call_id, "name": "web_search",
                       "input": {"query": f"search {number + 1}"}})
        blocks.append({"type": "web_search_tool_result", "tool_use_id": call_id,
                       "content": [{"type": "web_search_result", "url": "https://example.com/",
                                    "title": "Example", "encrypted_content": "EncRyPt",
                                    "page_age": None}]})
    return blocks


def _thinking_blocks(body: dict[str, Any], prompt: str) -> list[dict[str, Any]]:
    """A thinking block first when extended (or adaptive) thinking is on."""
    if (body.get("thinking") or {}).get("type") not in ("enabled", "adaptive"):
        return []
    signature = "Sig" + secrets.token_urlsafe(24)  # opaque; clients must send it back as is
    return [{"type": "thinking", "thinking": f"Thinking about: {prompt}", "signature": signature}]


def _reply(body: dict[str, Any], prompt: str) -> str:
    """The echo, or with structured outputs (``output_config.format``) JSON fitting the schema."""
    output_format = (body.get("output_config") or {}).get("format") or {}
    if output_format.get("type") == "json_schema":
        return json.dumps(sample_value(output_format.get("schema"), reply_to(prompt)))
    return reply_to(prompt)


def last_user_turn(messages: list[dict[str, Any]]) -> tuple[str, bool]:
    """The text of the last user message, and whether it only carried tool results."""
    user = next((m for m in reversed(messages) if m["role"] == "user"), {"content": ""})
    content = user["content"]
    if isinstance(content, str):
        return content, False
    texts = [b["text"] for b in content if b["type"] == "text"]
    if texts:
        return " ".join(texts), False
    results = [_result_text(b) for b in content if b["type"] == "tool_result"]
    return " ".join(results), bool(results)


def _result_text(block: dict[str, Any]) -> str:
    inner = block.get("content")
    if isinstance(inner, list):
        return " ".join(b["text"] for b in inner if b.get("type") == "text")
    return str(inner or "")


def _tool_calls(body: dict[str, Any], prompt: str, after_tools: bool) -> list[dict[str, Any]]:
    tools = [t for t in body.get("tools") or [] if "input_schema" in t]
    choice = body.get("tool_choice") or {"type": "auto"}
    forced = choice["type"] in ("any", "tool")
    if (
        not tools
        or choice["type"] == "none"
        or not (forced or (wants_tool(prompt) and not after_tools))
    ):
        return []
    named = [t for t in tools if t["name"] == choice.get("name")]
    weather = [t for t in tools if "weather" in t["name"].lower()]
    tool = (named or weather or tools)[0]
    cities = cities_in(prompt)[:1] if choice.get("disable_parallel_tool_use") else cities_in(prompt)
    return [
        {
            "type": "tool_use",
            "id": new_id("toolu_"),
            "name": tool["name"],
            "input": tool_arguments(tool["input_schema"], city),
        }
        for city in cities
    ]


def input_usage(body: dict[str, Any], cache: set[str]) -> dict[str, int]:
    """Input token counts, with prompt caching: the prefix up to the last
    ``cache_control`` marker is written to the cache the first time and read after."""
    pieces = _input_pieces(body)
    total = sum(count_tokens(text) for text, _ in pieces)
    marked = [i for i, (_, is_marked) in enumerate(pieces) if is_marked]
    usage = {"input_tokens": total, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    if not marked:
        return usage
    prefix = [text for text, _ in pieces[: marked[-1] + 1]]
    cached = sum(count_tokens(text) for text in prefix)
    key = hashlib.sha256("\x00".join(prefix).encode()).hexdigest()
    usage["cache_read_input_tokens" if key in cache else "cache_creation_input_tokens"] = cached
    usage["input_tokens"] = total - cached
    cache.add(key)
    return usage


def _input_pieces(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """The prompt in cache order (tools, system, messages) as (text, has cache_control)."""
    pieces = [
        (json.dumps(t, sort_keys=True), "cache_control" in t) for t in body.get("tools") or []
    ]
    system = body.get("system")
    if isinstance(system, str):
        pieces.append((system, False))
    else:
        pieces += [(b["text"], "cache_control" in b) for b in system or []]
    for message in body["messages"]:
        content = message["content"]
        if isinstance(content, str):
            pieces.append((content, False))
            continue
        for block in content:
            pieces.append((_block_text(block), "cache_control" in block))
    if body.get("cache_control") and pieces:  # top-level marker: the last cacheable block
        pieces[-1] = (pieces[-1][0], True)
    return pieces


def _block_text(block: dict[str, Any]) -> str:
    if block["type"] == "text":
        return block["text"]
    if block["type"] == "tool_result":
        return _result_text(block)
    if block["type"] == "tool_use":
        return json.dumps(block.get("input"))
    return ""
