"""Shared vocabulary of the Gemini translations: field spelling, finish reasons, usage, media.

The Gemini API parses requests as protobuf JSON, which accepts every field in lowerCamelCase or
in the proto's snake_case, and google-genai really sends both (``inlineData`` holding
``mime_type``, ``parameters_json_schema``). Gemini requests are therefore read with
:func:`pick`, never with ``dict.get``; what the gateway writes is always lowerCamelCase.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import Any
from urllib.parse import unquote_to_bytes

from onyproxy.errors import GatewayError, invalid_request

_UPPER = re.compile(r"([A-Z])")


def snake(name: str) -> str:
    """``inlineData`` -> ``inline_data``."""
    return _UPPER.sub(r"_\1", name).lower()


def pick(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` under its camelCase or snake_case spelling (``name`` is camelCase)."""
    if not isinstance(obj, dict):
        return default
    value = obj.get(name)
    if value is None:
        value = obj.get(snake(name))
    return default if value is None else value


def camel(name: str) -> str:
    """``inline_data`` -> ``inlineData``."""
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


# Gemini FinishReason -> OpenAI finish_reason. Blocks for content reasons are content_filter;
# reasons OpenAI has no word for (OTHER, MALFORMED_FUNCTION_CALL ...) end as a plain stop.
_FILTERED = frozenset({
    "SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
    "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER",
})


def openai_finish_reason(reason: str | None, has_tool_calls: bool) -> str | None:
    """OpenAI's ``finish_reason`` for a Gemini ``finishReason`` (None: not finished yet)."""
    if not reason:
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if has_tool_calls else "stop"


_GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP",
                  "function_call": "STOP", "content_filter": "SAFETY"}


def gemini_finish_reason(reason: str | None) -> str | None:
    """Gemini's ``finishReason`` for an OpenAI ``finish_reason``."""
    if not reason:
        return None
    return _GEMINI_FINISH.get(reason, "OTHER")


def openai_usage(meta: Any) -> dict[str, Any] | None:
    """OpenAI ``usage`` from Gemini ``usageMetadata``.

    Gemini's ``candidatesTokenCount`` excludes thinking while OpenAI's ``completion_tokens``
    includes reasoning (both are billed as output), so thoughts are added to the completion
    and also reported as ``reasoning_tokens``. Tool-use prompt tokens are input, so they count
    as prompt. ``promptTokenCount`` already includes the cached part, like ``prompt_tokens``.
    """
    if not isinstance(meta, dict):
        return None
    prompt = _int(pick(meta, "promptTokenCount")) + _int(pick(meta, "toolUsePromptTokenCount"))
    thoughts = _int(pick(meta, "thoughtsTokenCount"))
    completion = _int(pick(meta, "candidatesTokenCount")) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _int(pick(meta, "cachedContentTokenCount"))},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def gemini_usage(usage: Any) -> dict[str, Any] | None:
    """Gemini ``usageMetadata`` from OpenAI ``usage`` (the inverse of :func:`openai_usage`)."""
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    reasoning = _int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens"))
    cached = _int((usage.get("prompt_tokens_details") or {}).get("cached_tokens"))
    meta = {"promptTokenCount": prompt, "candidatesTokenCount": max(0, completion - reasoning),
            "totalTokenCount": prompt + completion}
    if cached:
        meta["cachedContentTokenCount"] = cached
    if reasoning:
        meta["thoughtsTokenCount"] = reasoning
    return meta


def _int(value: Any) -> int:
    # Proto JSON may write integers as strings; a missing count is zero.
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def new_call_id() -> str:
    """A tool-call id in OpenAI's style, for function calls Gemini sent without one."""
    return f"call_{secrets.token_hex(12)}"


def parse_data_url(url: str, where: str) -> tuple[str, str]:
    """(mime type, base64 data) of a ``data:`` URL, or a 400 naming ``where``."""
    header, sep, payload = url[5:].partition(",")
    mime, *params = header.split(";")
    if not sep or not mime:
        raise invalid_request(f"'{where}' is not a valid data: URL with a media type.",
                              param=where)
    if "base64" in params:
        try:
            base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_request(f"'{where}' does not hold valid base64 data.",
                                  param=where) from None
        return mime, payload
    return mime, base64.b64encode(unquote_to_bytes(payload)).decode("ascii")


def data_url(mime: str, data: str) -> str:
    return f"data:{mime};base64,{data}"


def bad_upstream(message: str) -> GatewayError:
    """The provider answered something the gateway cannot translate faithfully."""
    return GatewayError(502, "api_error", message, code="untranslatable_response")
