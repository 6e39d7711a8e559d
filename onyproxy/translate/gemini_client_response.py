"""OpenAI ``chat.completion`` -> Gemini ``GenerateContentResponse`` (a Gemini client).

One candidate per choice: the text as a text part, each tool call as a ``functionCall`` part
that keeps the OpenAI call id (the SDK copies it into the ``functionResponse``, which pairs the
two again on the way back), a refusal as text. A candidate always has at least one part, as the
SDK's chat history treats an empty content as a failed turn.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from onyproxy.translate import Context
from onyproxy.translate.gemini_common import bad_upstream, gemini_finish_reason, gemini_usage


def to_gemini(body: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The Gemini answer for an OpenAI one."""
    candidates = [candidate(choice, position)
                  for position, choice in enumerate(body.get("choices") or [])]
    out: dict[str, Any] = {"candidates": candidates}
    usage = gemini_usage(body.get("usage"))
    if usage is not None:
        out["usageMetadata"] = usage
    out["modelVersion"] = ctx.model
    out["responseId"] = response_id(body)
    return out


def response_id(body: dict[str, Any]) -> str:
    return str(body.get("id") or secrets.token_urlsafe(16))


def candidate(choice: dict[str, Any], position: int) -> dict[str, Any]:
    message = choice.get("message") or {}
    parts = text_parts(message)
    parts += [function_call(call) for call in message.get("tool_calls") or []]
    return {"content": {"role": "model", "parts": parts or [{"text": ""}]},
            "finishReason": gemini_finish_reason(choice.get("finish_reason")) or "STOP",
            "index": choice.get("index", position)}


def text_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    text = message.get("content") or message.get("refusal")
    return [{"text": text}] if isinstance(text, str) and text else []


def function_call(call: dict[str, Any]) -> dict[str, Any]:
    """A ``functionCall`` part for a complete OpenAI tool call."""
    function = call.get("function") or {}
    return {"functionCall": {"id": call.get("id"), "name": function.get("name", ""),
                             "args": arguments(function.get("arguments"))}}


def arguments(raw: Any) -> dict[str, Any]:
    """Tool arguments as the object Gemini carries; the provider must have sent JSON."""
    try:
        args = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise bad_upstream("The provider sent tool-call arguments that are not a JSON object.")
    return args
