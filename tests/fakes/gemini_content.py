"""Pure shape logic of the fake Gemini API: request checks and answers.

The real API parses requests as protobuf JSON, so every field may be spelled in
lowerCamelCase or in the proto's snake_case, and google-genai mixes both
(``inlineData`` holding ``mime_type``). :func:`pick` reads either spelling.
Unknown field names are refused with the real API's wording, which catches
translation typos such as ``generationConfig.maxTokens``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from typing import Any

from .echo_model import (
    cities_in,
    count_tokens,
    cut,
    reply_to,
    sample_value,
    tokens,
    tool_arguments,
    wants_tool,
)

REQUEST_FIELDS = frozenset(
    {
        "contents",
        "tools",
        "toolConfig",
        "safetySettings",
        "systemInstruction",
        "generationConfig",
        "cachedContent",
        "model",
        "labels",
        "serviceTier",
        "store",
    }
)
GENERATION_FIELDS = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "imageConfig",
        "mediaResolution",
        "audioTimestamp",
    }
)
PART_DATA_FIELDS = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
    }
)
PART_FIELDS = PART_DATA_FIELDS | {
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "partMetadata",
    "mediaResolution",
}
CACHED_TOKENS = 32  # reported for any request naming a cachedContent
THOUGHT_TOKENS = 12  # reported when thinking is on (budget > 0 or includeThoughts)


class InvalidArgument(ValueError):
    """The request breaks a rule the real API enforces (answered 400 INVALID_ARGUMENT)."""


def snake(name: str) -> str:
    """``inlineData`` -> ``inline_data``."""
    return re.sub(r"([A-Z])", r"_\1", name).lower()


def camel(name: str) -> str:
    """``inline_data`` -> ``inlineData``."""
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def pick(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` under its camelCase or snake_case spelling."""
    if not isinstance(obj, dict):
        return default
    value = obj.get(name, obj.get(snake(name)))
    return default if value is None else value


# -- checks -------------------------------------------------------------------------


def validate_generate(body: Any) -> dict[str, Any]:
    """Return ``body`` when it is a valid GenerateContentRequest, else raise InvalidArgument."""
    if not isinstance(body, dict):
        raise InvalidArgument("Invalid JSON payload received. Expected an object.")
    _check_fields(body, REQUEST_FIELDS, "")
    _check_fields(pick(body, "generationConfig", {}), GENERATION_FIELDS, "generation_config")
    contents = pick(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidArgument("* GenerateContentRequest.contents: contents is not specified\n")
    for index, content in enumerate(contents):
        _check_content(f"contents[{index}]", content)
    system = pick(body, "systemInstruction")
    if system is not None:
        _check_content("system_instruction", system, roles=(None, "user", "system"))
    _check_declarations(pick(body, "tools", []))
    return body


def _check_declarations(tools: Any) -> None:
    for index, tool in enumerate(tools if isinstance(tools, list) else [None]):
        declarations = pick(tool, "functionDeclarations", [])
        if not isinstance(tool, dict) or any(not pick(d, "name") for d in declarations):
            raise InvalidArgument(
                f"* GenerateContentRequest.tools[{index}].function_declarations: "
                "name must not be empty\n"
            )


def _check_fields(obj: dict[str, Any], known: frozenset[str], where: str) -> None:
    for name in obj:
        if camel(name) not in known:
            at = f" at '{where}'" if where else ""
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
            )


def _check_content(
    where: str, content: Any, roles: tuple[Any, ...] = (None, "user", "model")
) -> None:
    if not isinstance(content, dict) or content.get("role") not in roles:
        raise InvalidArgument("Please use a valid role: user, model.")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise InvalidArgument(
            f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.\n"
        )
    for index, part in enumerate(parts):
        _check_part(f"{where}.parts[{index}]", part)


def _check_part(where: str, part: Any) -> None:
    if not isinstance(part, dict):
        raise InvalidArgument(f"Invalid value at '{where}': Expected an object.")
    _check_fields(part, PART_FIELDS, where)
    if not any(pick(part, name) is not None for name in PART_DATA_FIELDS):
        raise InvalidArgument(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have "
            "one initialized field\n"
        )
    inline = pick(part, "inlineData")
    if inline is not None:
        _check_inline_data(f"{where}.inline_data", inline)
    file_data = pick(part, "fileData")
    if file_data is not None and not pick(file_data, "fileUri"):
        raise InvalidArgument(
            f"* GenerateContentRequest.{where}.file_data.file_uri: file_uri must not be empty\n"
        )
    call = pick(part, "functionResponse") or pick(part, "functionCall")
    if call is not None and not pick(call, "name"):
        raise InvalidArgument(
            f"* GenerateContentRequest.{where}: function name must not be empty\n"
        )


def _check_inline_data(where: str, inline: Any) -> None:
    if not pick(inline, "mimeType"):
        raise InvalidArgument(
            f"* GenerateContentRequest.{where}.mime_type: mime_type must not be empty\n"
        )
    try:
        base64.b64decode(pick(inline, "data", ""), validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidArgument(
            f"Invalid value at '{where}.data' (TYPE_BYTES), Base64 decoding failed"
        ) from None


# -- answers ------------------------------------------------------------------------


def new_response_id() -> str:
    """An id in the style of ``responseId`` (22 url-safe characters)."""
    return secrets.token_urlsafe(16)[:22]


def last_user_turn(contents: list[dict[str, Any]]) -> tuple[str, bool]:
    """The text of the last user content, and whether it only carried function responses."""
    user = next((c for c in reversed(contents) if c.get("role") in (None, "user")), {"parts": []})
    texts = [pick(p, "text") for p in user["parts"] if isinstance(pick(p, "text"), str)]
    if texts:
        return " ".join(texts), False
    results = [pick(p, "functionResponse") for p in user["parts"] if pick(p, "functionResponse")]
    rendered = [json.dumps(pick(r, "response", {}), sort_keys=True) for r in results]
    return " ".join(rendered), bool(results)


def function_calls(body: dict[str, Any], prompt: str, after_tools: bool) -> list[dict[str, Any]]:
    """The ``functionCall`` parts the echo model answers with, or [] for a text answer."""
    declarations = [
        d for tool in pick(body, "tools", []) for d in pick(tool, "functionDeclarations", [])
    ]
    config = pick(pick(body, "toolConfig", {}), "functionCallingConfig", {})
    mode = str(pick(config, "mode", "AUTO")).upper()
    forced = mode == "ANY"
    if (
        not declarations
        or mode == "NONE"
        or not (forced or (wants_tool(prompt) and not after_tools))
    ):
        return []
    allowed = pick(config, "allowedFunctionNames", [])
    named = [d for d in declarations if d["name"] in allowed]
    weather = [d for d in declarations if "weather" in d["name"].lower()]
    chosen = (named or weather or declarations)[0]
    schema = pick(chosen, "parameters") or pick(chosen, "parametersJsonSchema")
    return [
        {"functionCall": {"name": chosen["name"], "args": tool_arguments(schema, city)}}
        for city in cities_in(prompt)
    ]


def build_answer(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str, dict[str, int]]:
    """(parts, finishReason, usage counts) for a valid request."""
    contents = pick(body, "contents")
    prompt, after_tools = last_user_turn(contents)
    config = pick(body, "generationConfig", {})
    parts = function_calls(body, prompt, after_tools)
    if parts:
        finish, output = "STOP", sum(count_tokens(json.dumps(p["functionCall"])) for p in parts)
    else:
        result = cut(
            _reply(config, prompt),
            pick(config, "stopSequences", []),
            pick(config, "maxOutputTokens"),
        )
        # Gemini reports a stop sequence as a plain STOP, unlike Anthropic.
        finish = "MAX_TOKENS" if result.reason == "max_tokens" else "STOP"
        parts, output = [{"text": result.text}], count_tokens(result.text)
    usage = {"prompt": prompt_tokens(body), "candidates": output, "thoughts": 0, "cached": 0}
    if pick(body, "cachedContent"):
        usage["cached"] = CACHED_TOKENS
        usage["prompt"] += CACHED_TOKENS
    thinking = pick(config, "thinkingConfig", {})
    if pick(thinking, "thinkingBudget", 0) > 0 or pick(thinking, "includeThoughts"):
        usage["thoughts"] = THOUGHT_TOKENS
    if pick(thinking, "includeThoughts"):
        parts = [{"text": f"Thinking about: {prompt}", "thought": True}, *parts]
    return parts, finish, usage


def _reply(config: dict[str, Any], prompt: str) -> str:
    """The echo, or in JSON mode a JSON document fitting the response schema."""
    if pick(config, "responseMimeType") != "application/json":
        return reply_to(prompt)
    schema = pick(config, "responseSchema") or pick(config, "responseJsonSchema")
    value = sample_value(schema, reply_to(prompt)) if schema else {"text": reply_to(prompt)}
    return json.dumps(value)


def prompt_tokens(body: dict[str, Any]) -> int:
    """Tokens of the system instruction and contents (text and function payloads)."""
    system = pick(body, "systemInstruction")
    contents = [*pick(body, "contents"), *([system] if system else [])]
    return max(1, sum(count_tokens(_part_text(p)) for c in contents for p in c["parts"]))


def _part_text(part: dict[str, Any]) -> str:
    text = pick(part, "text")
    if isinstance(text, str):
        return text
    payload = pick(part, "functionCall") or pick(part, "functionResponse")
    return json.dumps(payload) if payload else ""


def usage_metadata(usage: dict[str, int], candidates: int) -> dict[str, Any]:
    """``usageMetadata`` with ``candidates`` output tokens; zero optional counts are omitted."""
    total = usage["prompt"] + candidates + usage["thoughts"]
    metadata: dict[str, Any] = {
        "promptTokenCount": usage["prompt"],
        "candidatesTokenCount": candidates,
        "totalTokenCount": total,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": usage["prompt"]}],
    }
    if usage["cached"]:
        metadata["cachedContentTokenCount"] = usage["cached"]
    if usage["thoughts"]:
        metadata["thoughtsTokenCount"] = usage["thoughts"]
    return metadata


def response_chunks(body: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """The GenerateContentResponse list of a stream; a non-stream answer is the merge.

    Text comes in up to three chunks, function calls whole in one, ``finishReason``
    on the last, and every chunk carries ``usageMetadata`` with the output tokens
    so far, as the real API does.
    """
    parts, finish, usage = build_answer(body)
    groups = _split_parts(parts)
    response_id = new_response_id()
    chunks, produced = [], 0
    for number, group in enumerate(groups, start=1):
        produced += sum(
            count_tokens(p["text"]) for p in group if "text" in p and not p.get("thought")
        )
        candidate: dict[str, Any] = {"content": {"parts": group, "role": "model"}, "index": 0}
        if number == len(groups):
            candidate["finishReason"] = finish
            produced = usage["candidates"]
        chunks.append(
            {
                "candidates": [candidate],
                "usageMetadata": usage_metadata(usage, produced),
                "modelVersion": model,
                "responseId": response_id,
            }
        )
    return chunks


def merge_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-stream GenerateContentResponse equal to the streamed ``chunks``."""
    parts: list[dict[str, Any]] = []
    for chunk in chunks:
        for part in chunk["candidates"][0]["content"]["parts"]:
            if (
                parts
                and "text" in part
                and "text" in parts[-1]
                and part.get("thought") == parts[-1].get("thought")
            ):
                parts[-1] = {**parts[-1], "text": parts[-1]["text"] + part["text"]}
            else:
                parts.append(part)
    last = chunks[-1]
    candidate = {**last["candidates"][0], "content": {"parts": parts, "role": "model"}}
    return {**last, "candidates": [candidate]}


def _split_parts(parts: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    text = [p for p in parts if "text" in p and not p.get("thought")]
    if len(text) != 1:  # function calls come whole, in one chunk
        return [parts]
    words = tokens(text[0]["text"])
    size = max(1, -(-len(words) // 3))
    pieces = ["".join(words[i : i + size]) for i in range(0, len(words), size)] or [""]
    head = [p for p in parts if p.get("thought")]
    return [[*head, {"text": pieces[0]}], *[[{"text": piece}] for piece in pieces[1:]]]
