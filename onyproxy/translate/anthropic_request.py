"""OpenAI Chat Completions request → Anthropic Messages request (OpenAI client, Anthropic provider).

Anthropic takes the system prompt as a top-level ``system``, wants alternating ``user`` /
``assistant`` turns, carries tool results as ``tool_result`` blocks inside a user turn and
requires ``max_tokens``. A parameter without an Anthropic equivalent that would change the
answer is refused with a 400 naming it; it is never dropped silently.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from onyproxy.errors import invalid_request
from onyproxy.translate.anthropic_tools import (
    to_anthropic_tool_choice,
    to_anthropic_tools,
    unsupported,
)

if TYPE_CHECKING:
    from onyproxy.translate import Context

# Anthropic requires max_tokens, OpenAI does not (it defaults to what the model allows). 4096 is
# within the output limit of every current Claude model and long enough for ordinary answers.
DEFAULT_MAX_TOKENS = 4096
TEMPERATURE_MAX = 1.0  # Anthropic's range is 0..1; OpenAI's is 0..2
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
EFFORTS = ("low", "medium", "high", "xhigh", "max")  # OpenAI reasoning_effort ∩ Anthropic effort

# Mapped below, one by one.
_MAPPED = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
    "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls",
    "response_format", "user", "safety_identifier", "reasoning_effort",
})
# Accepted and not forwarded: storage, caching and billing hints that do not change the answer.
# ``seed`` is a best-effort determinism hint that Anthropic has no counterpart for.
_IGNORED = frozenset({
    "store", "metadata", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
    "service_tier", "seed",
})
# Accepted only with their neutral value, which is what Anthropic does anyway.
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (None, 1),
    "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "modalities": (None, ["text"]),
    "functions": (None, []),
    "function_call": (None,),
    "audio": (None,),
    "prediction": (None,),
    "web_search_options": (None,),
    "verbosity": (None,),
}
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)(?P<params>(;[^;,]*)*?);base64,",
                       re.ASCII)


def to_anthropic_request(body: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Map a ``/v1/chat/completions`` body to a ``/v1/messages`` body."""
    refuse_unsupported(body)
    system, messages = split_messages(body.get("messages") or [])
    out: dict[str, Any] = {"model": body["model"], "messages": messages,
                           "max_tokens": _max_tokens(body)}
    if system:
        out["system"] = system
    if body.get("stream"):
        out["stream"] = True
    _copy_sampling(body, out)
    tools = to_anthropic_tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        choice = to_anthropic_tool_choice(body.get("tool_choice"),
                                          body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    user = body.get("safety_identifier") or body.get("user")
    if user:
        out["metadata"] = {"user_id": str(user)}
    output_config = _output_config(body)
    if output_config:
        out["output_config"] = output_config
    return out


def refuse_unsupported(body: dict[str, Any]) -> None:
    for key, value in body.items():
        if key in _MAPPED or key in _IGNORED:
            continue
        if key in _NEUTRAL:
            if value in _NEUTRAL[key]:
                continue
            raise unsupported(key, "Anthropic's Messages API has no equivalent.")
        raise invalid_request(f"Unrecognized request argument supplied: {key}", param=key)


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(value) if value else DEFAULT_MAX_TOKENS


def _copy_sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    temperature = body.get("temperature")
    if temperature is not None:
        if temperature > TEMPERATURE_MAX:
            raise invalid_request(
                f"'temperature' must be between 0 and {TEMPERATURE_MAX:g} for this model "
                f"(its provider, Anthropic, does not accept {temperature}).",
                param="temperature", code="unsupported_value")
        out["temperature"] = temperature
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)


def _output_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else fmt
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise invalid_request("'response_format.json_schema.schema' must be an object.",
                                  param="response_format")
        config["format"] = {"type": "json_schema", "schema": schema}
    elif kind not in (None, "text"):
        # Anthropic has structured outputs (a schema) but no schema-less JSON mode.
        raise unsupported("response_format", f"type '{kind}' has no Anthropic equivalent; "
                                             "use type 'json_schema' with a schema.")
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in EFFORTS:
            raise unsupported("reasoning_effort", f"Anthropic's effort levels are "
                                                  f"{', '.join(EFFORTS)}.")
        config["effort"] = effort
    return config


# -- messages ---------------------------------------------------------------------------------


def split_messages(messages: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """(system text, alternating Anthropic turns) from OpenAI messages."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role")
        if role in ("system", "developer"):
            # Anthropic has one top-level system prompt; OpenAI system turns are gathered there.
            system.append(_plain_text(message.get("content"), f"{where}.content"))
            continue
        role, blocks = _turn(role, message, where)
        if not blocks:
            continue  # e.g. an assistant turn with null content: nothing to send
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)  # Anthropic merges same-role turns; do it here
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise invalid_request("'messages' must contain at least one user or assistant message.",
                              param="messages")
    return "\n\n".join(system), [_compact(turn) for turn in turns]


def _turn(role: Any, message: dict[str, Any], where: str) -> tuple[str, list[dict[str, Any]]]:
    if role == "user":
        return "user", user_blocks(message.get("content"), f"{where}.content")
    if role == "assistant":
        return "assistant", assistant_blocks(message, where)
    if role == "tool":
        return "user", [tool_result_block(message, where)]
    raise unsupported(f"{where}.role", f"role '{role}' has no Anthropic equivalent.")


def _compact(turn: dict[str, Any]) -> dict[str, Any]:
    """A turn of one plain text block is sent as a string, the shorthand the API documents."""
    blocks = turn["content"]
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return turn


def user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise invalid_request(f"'{where}' must be a string or an array of parts.", param=where)
    blocks = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url")
            blocks.append(image_block(url, f"{where}[{index}].image_url.url"))
        else:
            raise unsupported(f"{where}[{index}].type",
                              f"content parts of type '{kind}' have no Anthropic equivalent.")
    return blocks


def image_block(url: Any, where: str) -> dict[str, Any]:
    """A data: URL becomes a base64 source, an http(s) URL a url source."""
    if not isinstance(url, str):
        raise invalid_request(f"'{where}' must be a string.", param=where)
    match = _DATA_URL.match(url)
    if match:
        media_type = match.group("type").lower()
        if media_type not in IMAGE_MEDIA_TYPES:
            raise unsupported(where, f"image type '{media_type}'; Anthropic accepts "
                                     f"{', '.join(IMAGE_MEDIA_TYPES)}.")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                            "data": url[match.end():]}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise invalid_request(f"'{where}' must be an http(s) URL or a base64 data: URL.",
                          param=where)


def assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str) and content:
        blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        text = "".join(p.get("text") or p.get("refusal") or "" for p in content
                       if isinstance(p, dict))
        if text:
            blocks.append({"type": "text", "text": text})
    for index, call in enumerate(message.get("tool_calls") or []):
        blocks.append(tool_use_block(call, f"{where}.tool_calls[{index}]"))
    return blocks


def tool_use_block(call: dict[str, Any], where: str) -> dict[str, Any]:
    function = call.get("function") if call.get("type", "function") == "function" else None
    if not isinstance(function, dict):
        raise unsupported(f"{where}.type", "only function tool calls map to Anthropic tool_use.")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise invalid_request(f"'{where}.function.arguments' must be a JSON object "
                              "(Anthropic tool_use input is an object).",
                              param=f"{where}.function.arguments")
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
            "input": parsed}


def tool_result_block(message: dict[str, Any], where: str) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        content = [{"type": "text", "text": p.get("text", "")} for p in content
                   if isinstance(p, dict) and p.get("type") == "text"]
    return {"type": "tool_result", "tool_use_id": message.get("tool_call_id"),
            "content": content if content is not None else ""}


def _plain_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    raise invalid_request(f"'{where}' must be a string or an array of text parts.", param=where)
