"""What the fake OpenAI model answers, as OpenAI's wire objects (no HTTP here).

The chat answer is ``"echo: <last user text>"``. One word is one token: the prompt costs
the words of every message text, the answer its words (or tool-argument pieces). With
``tools``, a user text mentioning "weather" (or a ``tool_choice`` of ``"required"`` or naming
a function) gets a call of the first (or named) function with ``{"<its first parameter>":
"Paris"}``, plus one for "London" when the text says "two cities". :func:`plan_answer`
decides that once; :func:`completion_body` and :func:`stream_chunks` render it plain or
streamed. Embeddings are unit vectors fixed by the input (:func:`vector`), sent as floats
or base64 (:func:`encode`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_DIMENSIONS = 8
FINGERPRINT = "fp_0fa4e0a1b2"
CITIES = ("Paris", "London")
ARGUMENT_PIECE_CHARS = 5


# --- chat completions ----------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str

    def pieces(self) -> list[str]:
        step = ARGUMENT_PIECE_CHARS
        return [self.arguments[i : i + step] for i in range(0, len(self.arguments), step)]


@dataclass(frozen=True)
class Answer:
    """What the fake model says, shared by the plain and the streamed rendering."""

    words: list[str]  # content pieces; joined they make the content
    tool_calls: list[ToolCall]
    finish_reason: str
    prompt_tokens: int

    def usage(self) -> dict[str, Any]:
        completion = len(self.words) + sum(len(call.pieces()) for call in self.tool_calls)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return content if isinstance(content, str) else ""


def plan_answer(body: Mapping[str, Any]) -> Answer:
    messages = body["messages"]
    prompt_tokens = sum(len(message_text(m).split()) for m in messages)
    user_texts = [message_text(m) for m in messages if m.get("role") == "user"]
    text = user_texts[-1] if user_texts else ""
    calls = plan_tool_calls(body, text)
    if calls:
        return Answer([], calls, "tool_calls", prompt_tokens)
    words = f"echo: {text}".split()
    pieces = [word if i == 0 else f" {word}" for i, word in enumerate(words)]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit and len(pieces) > limit:
        return Answer(pieces[:limit], [], "length", prompt_tokens)
    return Answer(pieces, [], "stop", prompt_tokens)


def plan_tool_calls(body: Mapping[str, Any], text: str) -> list[ToolCall]:
    tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return []
    lowered = text.lower()
    if isinstance(choice, dict):
        wanted = choice.get("function", {}).get("name")
        tools = [t for t in tools if t.get("name") == wanted] or tools
    elif choice != "required" and "weather" not in lowered:
        return []
    parallel = body.get("parallel_tool_calls", True) and "two cities" in lowered
    return [tool_call(tools[0], city) for city in CITIES[: 2 if parallel else 1]]


def tool_call(function: Mapping[str, Any], value: str) -> ToolCall:
    parameters = function.get("parameters") or {}
    names = [*parameters.get("required", []), *parameters.get("properties", {}), "location"]
    arguments = json.dumps({names[0]: value}, separators=(",", ":"))
    return ToolCall(f"call_{secrets.token_hex(12)}", function["name"], arguments)


def completion_body(envelope: dict[str, Any], answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if answer.tool_calls else "".join(answer.words),
        "refusal": None,
        "annotations": [],
    }
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.tool_calls
        ]
    reason = answer.finish_reason
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
    return {**envelope, "choices": [choice], "usage": answer.usage()}


def stream_chunks(
    envelope: dict[str, Any], answer: Answer, include_usage: bool
) -> list[dict[str, Any]]:
    base = {**envelope, "object": "chat.completion.chunk"}
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice]}

    chunks = [chunk(delta) for delta in stream_deltas(answer)]
    chunks.append(chunk({}, answer.finish_reason))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": answer.usage()})
    return chunks


def stream_deltas(answer: Answer) -> Iterator[dict[str, Any]]:
    if not answer.tool_calls:
        yield {"role": "assistant", "content": "", "refusal": None}
        yield from ({"content": word} for word in answer.words)
        return
    for index, call in enumerate(answer.tool_calls):
        function = {"name": call.name, "arguments": ""}
        opening = {"index": index, "id": call.id, "type": "function", "function": function}
        if index == 0:
            # OpenAI opens a tool-call stream with the role and the first call together.
            yield {"role": "assistant", "content": None, "tool_calls": [opening], "refusal": None}
        else:
            yield {"tool_calls": [opening]}
        for piece in call.pieces():
            yield {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


# --- embeddings -----------------------------------------------------------------------------


def embedding_list(
    model: str, inputs: list[str | list[int]], dimensions: int, as_base64: bool
) -> dict[str, Any]:
    """The ``embedding.list`` answer for ``inputs`` (see :func:`embedding_inputs`)."""
    data = [
        {"object": "embedding", "index": i, "embedding": encode(vector(x, dimensions), as_base64)}
        for i, x in enumerate(inputs)
    ]
    tokens = sum(len(x) if isinstance(x, list) else len(x.split()) for x in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def embedding_inputs(value: Any) -> list[str | list[int]] | None:
    """The inputs as a list (a text or token ids each), or None when the input is invalid."""
    single_tokens = isinstance(value, list) and value and all(isinstance(x, int) for x in value)
    if isinstance(value, str) or single_tokens:
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    if any(x in ("", []) or not isinstance(x, str | list) for x in value):
        return None
    return value


def vector(item: str | list[int], dimensions: int) -> list[float]:
    """A unit vector fixed by the input, exact in float32 so base64 round-trips compare equal."""
    seed = json.dumps(item).encode()
    words = [hashlib.sha256(seed + i.to_bytes(4, "little")).digest()[:4] for i in range(dimensions)]
    values = [int.from_bytes(w, "little") / 2**31 - 1.0 for w in words]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed))


def encode(values: list[float], as_base64: bool) -> list[float] | str:
    # base64 is the little-endian float32 bytes, which the openai SDK decodes by default.
    if not as_base64:
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")
