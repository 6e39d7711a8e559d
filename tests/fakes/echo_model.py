"""The deterministic "model" behind the fake upstreams.

Both fakes answer the same way so tests can predict every byte:

* the reply to a prompt is ``"echo: <prompt>"``;
* a token is a run of non-space characters with the spaces before it
  (``"echo: hi there"`` is three tokens: ``"echo:"``, ``" hi"``, ``" there"``), so
  joining the streamed tokens gives back the text exactly;
* a prompt that mentions "weather" asks for a tool call for Paris, and one that
  mentions "two cities" asks for two parallel calls (Paris, London);
* tool arguments and JSON-mode answers are sampled from the given JSON schema;
* embeddings are unit-length vectors derived from a hash of the text.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CITIES = ("Paris", "London")
_TOKEN = re.compile(r"\s*\S+(?:\s+$)?")  # trailing spaces stick to the last token


@dataclass(frozen=True)
class Cut:
    """A reply after stop sequences and the output-token limit were applied."""

    text: str
    reason: str  # "end", "stop_sequence" or "max_tokens"
    stop_sequence: str | None = None


def tokens(text: str) -> list[str]:
    """Split ``text`` into tokens that join back to it exactly."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """How many tokens the fakes bill for ``text``."""
    return len(tokens(text))


def reply_to(prompt: str) -> str:
    """The answer text for ``prompt``."""
    return f"echo: {prompt}"


def cut(text: str, stop_sequences: Sequence[str], max_tokens: int | None) -> Cut:
    """Stop ``text`` at the earliest stop sequence or at ``max_tokens``, whichever is first."""
    hits = [(text.find(s), s) for s in stop_sequences if s and s in text]
    result = Cut(text, "end")
    if hits:
        position, sequence = min(hits)
        result = Cut(text[:position], "stop_sequence", sequence)
    parts = tokens(result.text)
    if max_tokens is not None and len(parts) > max_tokens:
        # The limit is reached before the stop sequence would have been generated.
        return Cut("".join(parts[:max_tokens]), "max_tokens")
    return result


def wants_tool(prompt: str) -> bool:
    """Whether the prompt asks for a tool call when the model may choose."""
    return "weather" in prompt.lower()


def cities_in(prompt: str) -> list[str]:
    """The cities to call a tool for: two (parallel calls) or one."""
    return list(CITIES) if "two cities" in prompt.lower() else [CITIES[0]]


def sample_value(schema: Mapping[str, Any] | None, text: str) -> Any:
    """A value that fits ``schema`` (JSON Schema or Gemini Schema), strings being ``text``."""
    schema = schema or {}
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):  # JSON Schema unions such as ["string", "null"]
        kind = kind[0]
    kind = str(kind).lower()
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: sample_value(sub, text) for name, sub in properties.items()}
    if kind == "array":
        return [sample_value(schema.get("items"), text)]
    return {"integer": 1, "number": 1, "boolean": True, "null": None}.get(kind, text)


def tool_arguments(schema: Mapping[str, Any] | None, city: str) -> dict[str, Any]:
    """Arguments for a call of a tool whose parameters follow ``schema``."""
    value = sample_value(schema, city) if schema else {}
    return value if isinstance(value, dict) else {}


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit-length vector that depends only on ``text`` and ``dimensions``."""
    digest = b""
    counter = 0
    while len(digest) < dimensions:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    raw = [(byte - 127.5) / 127.5 for byte in digest[:dimensions]]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [round(v / norm, 6) for v in raw]
