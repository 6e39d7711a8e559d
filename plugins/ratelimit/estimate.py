"""How many tokens a request may use, estimated before the call from the client's body.

Like OpenAI's own limiter: about four characters per token over the text the request carries,
plus the output it allows itself (``max_tokens`` and its cousins). The estimate is reserved
against the tokens-per-minute limit and replaced by the provider's real usage when the call ends,
so it only needs to be cheap and roughly right, never exact.
"""

from __future__ import annotations

import math
from typing import Any

CHARS_PER_TOKEN = 4

# Top-level fields that carry prompt text, across the shapes clients send: OpenAI Chat
# (messages, tools), Responses (input, instructions), Anthropic (messages, system), Gemini
# (contents, systemInstruction), embeddings (input), legacy completions (prompt).
TEXT_FIELDS = ("messages", "system", "contents", "systemInstruction", "system_instruction",
               "input", "instructions", "prompt", "tools")

# Binary payloads (images, audio, files) are base64 text of no relation to their token cost;
# counting them as text would refuse a picture as if it were a book.
BINARY_KEYS = frozenset({"data", "url", "image_url", "file_data", "b64_json", "image_data",
                         "inlineData", "inline_data", "fileData"})

OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def estimate_tokens(body: dict[str, Any]) -> int:
    """Input (characters / 4) plus the requested output ceiling; at least 1."""
    chars = 0
    for name in TEXT_FIELDS:
        value = body.get(name)
        if value is not None:
            chars += text_chars(value)
    return max(1, math.ceil(chars / CHARS_PER_TOKEN) + output_ceiling(body))


def text_chars(value: Any) -> int:
    """Characters of every string inside ``value``, skipping binary payloads."""
    # Runs on every request: exact type checks (bodies come from orjson) and strings counted
    # where they are found, not pushed on the stack; about half the time of a plain walk.
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if not item.startswith("data:"):
                total += len(item)
        elif kind is dict:
            for key, child in item.items():
                if key in BINARY_KEYS:
                    continue
                if type(child) is str:
                    if not child.startswith("data:"):
                        total += len(child)
                elif type(child) is dict or type(child) is list:
                    stack.append(child)
        elif kind is list:
            stack.extend(item)
    return total


def output_ceiling(body: dict[str, Any]) -> int:
    """The most output tokens the request allows (0 when it sets no ceiling)."""
    values = [body.get(name) for name in OUTPUT_FIELDS]
    generation = body.get("generationConfig") or body.get("generation_config")
    if isinstance(generation, dict):
        values += [generation.get("maxOutputTokens"), generation.get("max_output_tokens")]
    return max((v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0),
               default=0)
