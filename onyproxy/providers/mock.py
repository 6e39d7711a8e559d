"""The built-in ``mock`` provider: answers in-process, for demos, health checks and load tests.

It echoes the last user message, counts tokens the same way every time, streams word by word,
and returns deterministic embeddings. It speaks the OpenAI shape, so every surface reaches it
through the same translation as a real OpenAI-compatible upstream.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from onyproxy.providers.base import Adapter, Reply
from onyproxy.providers.openai import read_openai_usage
from onyproxy.sse import Event

if TYPE_CHECKING:
    from onyproxy.config.model import TargetConfig
    from onyproxy.exchange import Exchange, Usage

_TOKEN = re.compile(r"\w+|[^\w\s]")
EMBEDDING_DIMENSIONS = 16


def count_tokens(text: str) -> int:
    """Words and punctuation marks: a stable stand-in for a tokenizer."""
    return len(_TOKEN.findall(text))


class MockAdapter(Adapter):
    """Echoes the conversation back; no network, no secrets."""

    type = "mock"
    shapes = ("openai",)
    operations = ("chat", "embeddings")

    async def send(self, ex: Exchange, target: TargetConfig, operation: str, shape: str,
                   body: dict[str, Any], stream: bool, timeout_s: float) -> Reply:
        if operation == "embeddings":
            answer = embeddings_answer(body, target.model)
            read_openai_usage(answer["usage"], ex.usage)
            return Reply(shape=shape, body=answer)
        text = "echo: " + last_user_text(body.get("messages") or [])
        prompt_tokens = sum(count_tokens(t) for t in message_texts(body.get("messages") or []))
        if stream:
            events = stream_events(target.model, text, prompt_tokens)
            return Reply(shape=shape, events=self.metered(shape, events, ex.usage))
        answer = chat_answer(target.model, text, prompt_tokens)
        read_openai_usage(answer["usage"], ex.usage)
        return Reply(shape=shape, body=answer)

    def read_usage(self, shape: str, obj: dict[str, Any], usage: Usage) -> None:
        read_openai_usage(obj.get("usage"), usage)


def message_texts(messages: list[Any]) -> list[str]:
    """The text of every message, whether content is a string or a list of parts."""
    return [_text(m.get("content")) for m in messages if isinstance(m, dict)]


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content
                        if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def chat_answer(model: str, text: str, prompt_tokens: int) -> dict[str, Any]:
    """A ``chat.completion`` object, as OpenAI's API reference defines it."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                                             "refusal": None, "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(prompt_tokens, count_tokens(text)),
        "system_fingerprint": "fp_onyproxy_mock",
    }


async def stream_events(model: str, text: str, prompt_tokens: int) -> AsyncIterator[Event]:
    """``chat.completion.chunk`` events word by word, the usage chunk, then ``[DONE]``."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model,
            "system_fingerprint": "fp_onyproxy_mock"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
        return Event.of({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                              "finish_reason": finish}], "usage": None})

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    words = text.split(" ")
    for i, word in enumerate(words):
        yield chunk({"content": word if i == 0 else " " + word})
    yield chunk({}, "stop")
    yield Event.of({**base, "choices": [], "usage": _usage(prompt_tokens, count_tokens(text))})
    yield Event("[DONE]")


def embeddings_answer(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Deterministic unit vectors derived from each input's hash."""
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(items):
        vector = _vector(str(item))
        embedding: Any = (base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                          if as_base64 else vector)
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(count_tokens(str(i)) for i in items)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b - 127.5 for b in digest[:EMBEDDING_DIMENSIONS]]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [v / norm for v in raw]
