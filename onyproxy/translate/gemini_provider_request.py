"""OpenAI Chat Completions request -> Gemini ``GenerateContentRequest`` (a Gemini provider).

Every OpenAI parameter is either mapped, known to leave the answer unchanged, or refused with a
400 naming it: a request is never answered as if a parameter had been honoured when it was not.
The model goes in the URL (the adapter's job), never in the body.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from onyproxy.errors import invalid_request
from onyproxy.translate import Context
from onyproxy.translate.gemini_common import parse_data_url
from onyproxy.translate.gemini_provider_options import generation_config, tool_config, tools

# Parameters with no effect on what the model answers: bookkeeping, caching and routing hints.
_NEUTRAL = frozenset({"model", "messages", "stream", "stream_options", "user", "metadata",
                      "store", "service_tier", "prompt_cache_key", "safety_identifier",
                      "prediction"})
_MAPPED = frozenset({"max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "n",
                     "seed", "presence_penalty", "frequency_penalty", "response_format",
                     "reasoning_effort", "tools", "tool_choice", "parallel_tool_calls",
                     "logprobs", "modalities"})
_AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mp3"}


def to_gemini(body: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The Gemini request equivalent to an OpenAI chat request (400 for what has none)."""
    for name, value in body.items():
        if value is not None and name not in _NEUTRAL and name not in _MAPPED:
            raise invalid_request(f"The parameter '{name}' is not supported by this model's "
                                  f"provider (Gemini).", param=name)
    system, contents = conversation(body.get("messages") or [])
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    declared = tools(body)
    if declared:
        request["tools"] = declared
    choice = tool_config(body)
    if choice:
        request["toolConfig"] = choice
    config = generation_config(body)
    if config:
        request["generationConfig"] = config
    return request


def conversation(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(systemInstruction parts, contents) of an OpenAI message list.

    System and developer messages go to ``systemInstruction`` wherever they stand; consecutive
    messages of one role are merged, as parallel tool results must share one turn.
    """
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call id -> function name, for functionResponse
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role")
        if role in ("system", "developer"):
            system += [{"text": text} for text in texts(message.get("content"), where)]
        elif role == "user":
            _append(contents, "user", user_parts(message.get("content"), where))
        elif role == "assistant":
            _append(contents, "model", assistant_parts(message, where, names))
        elif role == "tool":
            _append(contents, "user", [function_response(message, where, names)])
        else:
            raise invalid_request(f"'{where}.role' {role!r} cannot be sent to Gemini.",
                                  param=f"{where}.role")
    return system, contents


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def texts(content: Any, where: str) -> list[str]:
    """The text pieces of a message whose content may only be text."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise invalid_request(f"'{where}.content' must be a string or an array of parts.",
                              param=f"{where}.content")
    out = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("text", "refusal"):
            raise invalid_request(f"'{where}.content[{index}]' must be a text part here.",
                                  param=f"{where}.content[{index}]")
        out.append(part.get(kind) or "")
    return out


def user_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return [{"text": text} for text in texts(content, where)]
    return [_user_part(part, f"{where}.content[{index}]") for index, part in enumerate(content)]


def _user_part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return {"text": part.get("text") or ""}
    if kind == "image_url":
        return media_part((part.get("image_url") or {}).get("url"), f"{where}.image_url.url")
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        mime = _AUDIO_FORMATS.get(audio.get("format"))
        if mime is None or not isinstance(audio.get("data"), str):
            raise invalid_request(f"'{where}.input_audio' needs base64 'data' and a 'format' "
                                  f"of wav or mp3.", param=f"{where}.input_audio")
        return {"inlineData": {"mimeType": mime, "data": audio["data"]}}
    if kind == "file":
        file = part.get("file") or {}
        if not isinstance(file.get("file_data"), str) or file.get("file_id"):
            raise invalid_request(f"'{where}.file' must carry 'file_data' as a data: URL; "
                                  f"uploaded file ids cannot reach Gemini.", param=f"{where}.file")
        return media_part(file["file_data"], f"{where}.file.file_data")
    raise invalid_request(f"'{where}.type' {kind!r} cannot be sent to Gemini.",
                          param=f"{where}.type")


def media_part(url: Any, where: str) -> dict[str, Any]:
    """``inlineData`` for a data: URL, ``fileData`` for an http(s) URL of a known media type."""
    if not isinstance(url, str) or not url:
        raise invalid_request(f"'{where}' is required.", param=where)
    if url.startswith("data:"):
        mime, data = parse_data_url(url, where)
        return {"inlineData": {"mimeType": mime, "data": data}}
    if url.startswith(("https://", "http://")):
        mime, _ = mimetypes.guess_type(url.split("?", 1)[0])
        if mime is None:
            raise invalid_request(f"'{where}': Gemini needs the media type of a linked file and "
                                  f"it cannot be told from this URL; send it as a data: URL.",
                                  param=where)
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise invalid_request(f"'{where}' must be a data: or http(s) URL.", param=where)


def assistant_parts(message: dict[str, Any], where: str,
                    names: dict[str, str]) -> list[dict[str, Any]]:
    parts = [{"text": text} for text in texts(message.get("content"), where) if text]
    if message.get("function_call") is not None:
        raise invalid_request(f"'{where}.function_call' is deprecated; use 'tool_calls'.",
                              param=f"{where}.function_call")
    for index, call in enumerate(message.get("tool_calls") or []):
        parts.append(function_call(call, f"{where}.tool_calls[{index}]", names))
    return parts


def function_call(call: Any, where: str, names: dict[str, str]) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise invalid_request(f"'{where}' must be a function call with a name.", param=where)
    try:
        args = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise invalid_request(f"'{where}.function.arguments' must be a JSON object.",
                              param=f"{where}.function.arguments")
    names[str(call.get("id"))] = function["name"]
    part: dict[str, Any] = {"functionCall": {"name": function["name"], "args": args}}
    # Gemini 3 rejects a replayed call without its thought signature; the gateway hands it to
    # OpenAI clients where Google's own OpenAI-compatible API does: extra_content.google.
    signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
    if isinstance(signature, str):
        part["thoughtSignature"] = signature
    return part


def function_response(message: dict[str, Any], where: str,
                      names: dict[str, str]) -> dict[str, Any]:
    """A tool message as ``functionResponse``; Gemini needs the function's name, not an id."""
    name = names.get(str(message.get("tool_call_id")))
    if name is None:
        raise invalid_request(f"'{where}.tool_call_id' does not match a tool call of an earlier "
                              f"assistant message.", param=f"{where}.tool_call_id")
    text = "".join(texts(message.get("content"), where))
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    # The API reads a response object's "output" key as the function's output.
    response = parsed if isinstance(parsed, dict) else {"output": text}
    return {"functionResponse": {"name": name, "response": response}}
