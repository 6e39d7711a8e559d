"""Token counts when a provider gave none, with a real tokenizer (``bpe-openai``, o200k_base).

``bpe-openai`` ships its vocabularies inside the wheel, so it works offline (tiktoken would
download them at first use). Loading the encoding takes a fraction of a second of CPU and
~135 MB, so it is loaded once, in a thread, the first time a count is needed (a provider sent
no usage, a stream was cut short, or a budget needs a reservation); counting long texts runs
in a thread too.
The count is exact for current OpenAI models and an estimate for others (events say
``estimated``).

Texts are gathered from the parsed request and answer in memory and dropped after counting;
they are never stored or logged.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from typing import Any

ENCODING = "o200k_base"
INLINE_CHARS = 4096  # shorter texts are counted on the event loop (microseconds)
MESSAGE_OVERHEAD = 4  # tokens a chat format adds per message (role, separators)

# Request fields that carry prompt text, across the shapes clients send.
REQUEST_FIELDS = ("messages", "system", "contents", "systemInstruction", "system_instruction",
                  "input", "instructions", "prompt", "tools")
# Keys whose string values are generated text (OpenAI, Responses, Anthropic, Gemini).
ANSWER_KEYS = frozenset({"content", "text", "arguments", "refusal", "reasoning_content",
                         "thinking", "partial_json"})
# Binary payloads are base64 of no relation to token counts.
BINARY_KEYS = frozenset({"data", "url", "image_url", "file_data", "b64_json", "image_data",
                         "inlineData", "inline_data", "fileData", "embedding", "signature"})
OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


class Tokenizer:
    """The o200k_base encoding, loaded once off the event loop."""

    def __init__(self) -> None:
        self._encoding: Any = None
        self._loading: asyncio.Task[Any] | None = None

    def start(self) -> None:
        """Begin loading in a thread; the first count waits for it if it has not finished."""
        if self._loading is None:
            self._loading = asyncio.create_task(asyncio.to_thread(_load),
                                                name="onyproxy-tokenizer-load")
            # Retrieved here, so a failed load is reported when a count needs it, not as an
            # "exception never retrieved" when nobody did.
            self._loading.add_done_callback(lambda t: t.cancelled() or t.exception())

    def stop(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()

    async def count(self, texts: Iterable[str]) -> int:
        """Tokens of ``texts`` together."""
        text = "\n".join(t for t in texts if t)
        if not text:
            return 0
        encoding = await self._ready()
        if len(text) <= INLINE_CHARS:
            return len(encoding.encode_ordinary(text))
        return await asyncio.to_thread(lambda: len(encoding.encode_ordinary(text)))

    async def _ready(self) -> Any:
        if self._encoding is None:
            self.start()
            assert self._loading is not None
            self._encoding = await asyncio.shield(self._loading)
        return self._encoding


def _load() -> Any:
    import bpe_openai  # imported here: half a second of work, done in a thread

    return bpe_openai.get_encoding(ENCODING)


def request_texts(body: dict[str, Any]) -> list[str]:
    """Every prompt string of a request body, skipping binary payloads."""
    return [text for name in REQUEST_FIELDS for text in strings(body.get(name), None)]


def message_count(body: dict[str, Any]) -> int:
    for name in ("messages", "contents", "input"):
        value = body.get(name)
        if isinstance(value, list):
            return len(value)
    return 1


def answer_texts(obj: Any) -> list[str]:
    """Generated text in a whole (non-stream) answer, in any shape."""
    return list(strings(obj, ANSWER_KEYS))


def stream_texts(obj: Any) -> list[str]:
    """Generated text in one stream event: only the increments, never the summaries some
    shapes repeat at the end (Responses' ``*.done`` and ``response.completed``)."""
    if not isinstance(obj, dict):
        return []
    if isinstance(obj.get("choices"), list):  # OpenAI Chat chunks
        return [t for c in obj["choices"] if isinstance(c, dict)
                for t in strings(c.get("delta"), ANSWER_KEYS)]
    delta = obj.get("delta")
    if isinstance(delta, str):  # Responses: response.output_text.delta and the like
        return [delta]
    if isinstance(delta, dict):  # Anthropic: content_block_delta
        return list(strings(delta, ANSWER_KEYS))
    return list(strings(obj.get("candidates"), ANSWER_KEYS))  # Gemini chunks are increments


def strings(value: Any, keys: frozenset[str] | None) -> Iterable[str]:
    """Strings inside ``value``; with ``keys``, only those whose own key (or the key of the
    list holding them) is one of ``keys``."""
    stack: list[tuple[Any, bool]] = [(value, keys is None)]
    while stack:
        item, take = stack.pop()
        if isinstance(item, str):
            if take and not item.startswith("data:"):
                yield item
        elif isinstance(item, dict):  # pushed in reverse: texts come out in document order
            stack.extend((v, keys is None or k in keys)
                         for k, v in reversed(item.items()) if k not in BINARY_KEYS)
        elif isinstance(item, list):
            stack.extend((v, take) for v in reversed(item))


def output_ceiling(body: dict[str, Any]) -> int | None:
    """The most output tokens the request allows, when it says."""
    values = [body.get(name) for name in OUTPUT_FIELDS]
    generation = body.get("generationConfig") or body.get("generation_config")
    if isinstance(generation, dict):
        values += [generation.get("maxOutputTokens"), generation.get("max_output_tokens")]
    found = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    return max(found) if found else None


def with_margin(tokens: int, margin: float) -> int:
    return math.ceil(tokens * margin)
