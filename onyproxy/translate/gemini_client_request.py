"""Gemini ``GenerateContentRequest`` -> OpenAI Chat Completions request (a Gemini client).

Fields are read in either spelling (see :func:`~onyproxy.translate.gemini_common.pick`). A
``functionCall`` without an id gets a stable one here; a ``functionResponse`` is matched to its
call by id, else by name in call order, the way Gemini itself pairs them. Errors name the field
in the message, because Gemini's error shape has no ``param``.
"""

from __future__ import annotations

from typing import Any

import orjson

from onyproxy.errors import invalid_request
from onyproxy.translate import Context
from onyproxy.translate.gemini_client_options import chat_options
from onyproxy.translate.gemini_common import camel, data_url, pick

# Top-level fields that do not change the answer an OpenAI-compatible model gives. Gemini's
# safety thresholds have no OpenAI equivalent: those providers apply their own moderation.
_NEUTRAL = frozenset({"contents", "systemInstruction", "tools", "toolConfig",
                      "generationConfig", "safetySettings", "model", "labels", "serviceTier",
                      "store"})
_AUDIO = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mp3": "mp3", "audio/mpeg": "mp3"}


def to_openai(body: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The OpenAI chat request equivalent to a Gemini one (400 naming what has none)."""
    for name, value in body.items():
        if value is not None and camel(name) not in _NEUTRAL:
            raise invalid_request(f"The field '{name}' is not supported for this model "
                                  f"(its provider speaks the OpenAI API).", param=name)
    messages = system_messages(pick(body, "systemInstruction"))
    messages += Conversation().messages(pick(body, "contents", []))
    request = {"model": ctx.model, "messages": messages, **chat_options(body)}
    if ctx.stream:
        request["stream"] = True
    return request


def system_messages(instruction: Any) -> list[dict[str, Any]]:
    if instruction is None:
        return []
    parts = instruction.get("parts") if isinstance(instruction, dict) else None
    if isinstance(instruction, str):  # some clients send the bare text
        parts = [{"text": instruction}]
    texts = [p.get("text") for p in parts or [] if isinstance(p, dict)]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise invalid_request("systemInstruction must hold text parts only.",
                              param="systemInstruction")
    return [{"role": "system", "content": "\n".join(texts)}]


class Conversation:
    """Turns ``contents`` into messages, pairing function calls with their responses."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []  # (call id, name) awaiting a response
        self.calls = 0

    def messages(self, contents: Any) -> list[dict[str, Any]]:
        if not isinstance(contents, list) or not contents:
            raise invalid_request("contents must be a non-empty array.", param="contents")
        out: list[dict[str, Any]] = []
        for index, content in enumerate(contents):
            where = f"contents[{index}]"
            parts = pick(content, "parts")
            if not isinstance(parts, list):
                raise invalid_request(f"{where}.parts must be an array.", param=f"{where}.parts")
            role = content.get("role") or "user"
            if role == "model":
                out += self.model_turn(parts, where)
            elif role in ("user", "function"):
                out += self.user_turn(parts, where)
            else:
                raise invalid_request(f"{where}.role must be 'user' or 'model'.",
                                      param=f"{where}.role")
        return out

    def model_turn(self, parts: list[Any], where: str) -> list[dict[str, Any]]:
        texts, calls = [], []
        for index, part in enumerate(parts):
            at = f"{where}.parts[{index}]"
            if pick(part, "thought") or _is_signature_only(part):
                continue  # thinking is the model's own; OpenAI models cannot take it back
            if isinstance(pick(part, "text"), str):
                texts.append(pick(part, "text"))
            elif pick(part, "functionCall") is not None:
                calls.append(self.tool_call(pick(part, "functionCall"), at))
            else:
                raise invalid_request(f"{at} holds a kind of part a model turn cannot carry "
                                      f"to this provider.", param=at)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
        if calls:
            message["tool_calls"] = calls
        return [message] if texts or calls else []

    def tool_call(self, call: Any, where: str) -> dict[str, Any]:
        name = pick(call, "name")
        if not isinstance(name, str) or not name:
            raise invalid_request(f"{where}.functionCall.name is required.", param=where)
        self.calls += 1
        call_id = pick(call, "id") or f"call_{self.calls}"
        self.pending.append((call_id, name))
        arguments = orjson.dumps(pick(call, "args", {})).decode()
        return {"id": call_id, "type": "function",
                "function": {"name": name, "arguments": arguments}}

    def user_turn(self, parts: list[Any], where: str) -> list[dict[str, Any]]:
        tools, content = [], []
        for index, part in enumerate(parts):
            at = f"{where}.parts[{index}]"
            if pick(part, "functionResponse") is not None:
                tools.append(self.tool_message(pick(part, "functionResponse"), at))
            else:
                content.append(user_part(part, at))
        if not content:
            return tools
        if all(p["type"] == "text" for p in content):
            return [*tools, {"role": "user", "content": "".join(p["text"] for p in content)}]
        return [*tools, {"role": "user", "content": content}]

    def tool_message(self, response: Any, where: str) -> dict[str, Any]:
        call_id = self._match(pick(response, "id"), pick(response, "name"), where)
        result = pick(response, "response", {})
        # {"output": x} is the documented way to give a function's output; send x itself.
        if isinstance(result, dict) and set(result) == {"output"}:
            result = result["output"]
        content = result if isinstance(result, str) else orjson.dumps(result).decode()
        return {"role": "tool", "tool_call_id": call_id, "content": content}

    def _match(self, call_id: Any, name: Any, where: str) -> str:
        by_id = [i for i, (pending_id, _) in enumerate(self.pending) if pending_id == call_id]
        by_name = [i for i, (_, pending_name) in enumerate(self.pending) if pending_name == name]
        matches = by_id or by_name
        if matches:
            return self.pending.pop(matches[0])[0]
        raise invalid_request(f"{where}.functionResponse ({name!r}) answers no earlier "
                              f"functionCall.", param=where)


def _is_signature_only(part: Any) -> bool:
    return isinstance(part, dict) and set(map(camel, part)) == {"thoughtSignature"}


def user_part(part: Any, where: str) -> dict[str, Any]:
    """One OpenAI content part for a Gemini text, ``inlineData`` or ``fileData`` part."""
    if isinstance(pick(part, "text"), str):
        return {"type": "text", "text": pick(part, "text")}
    inline = pick(part, "inlineData")
    if isinstance(inline, dict):
        return inline_part(pick(inline, "mimeType", ""), pick(inline, "data", ""), where)
    linked = pick(part, "fileData")
    if isinstance(linked, dict):
        uri, mime = pick(linked, "fileUri", ""), pick(linked, "mimeType", "")
        if uri.startswith(("https://", "http://")) and (mime.startswith("image/") or not mime):
            return {"type": "image_url", "image_url": {"url": uri}}
        raise invalid_request(f"{where}.fileData: only images at http(s) URLs can reach this "
                              f"provider; send other files inline.", param=where)
    raise invalid_request(f"{where} is not a text, inlineData or fileData part, which is all "
                          f"this provider takes from a user.", param=where)


def inline_part(mime: str, data: str, where: str) -> dict[str, Any]:
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": data_url(mime, data)}}
    if mime in _AUDIO:
        return {"type": "input_audio", "input_audio": {"data": data, "format": _AUDIO[mime]}}
    if mime == "application/pdf":
        return {"type": "file", "file": {"filename": "document.pdf",
                                         "file_data": data_url(mime, data)}}
    raise invalid_request(f"{where}.inlineData: media type {mime!r} cannot be sent to this "
                          f"provider.", param=where)
