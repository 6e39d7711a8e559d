"""Gemini stream (``data: GenerateContentResponse`` events) -> OpenAI ``chat.completion.chunk``s.

Each Gemini event is converted as it arrives: text parts become content deltas, ``functionCall``
parts (which Gemini sends whole) become one tool-call delta each, and a ``finishReason`` becomes
a chunk of its own with an empty delta, as OpenAI sends it. Gemini repeats the cumulative
``usageMetadata`` on its events; the last one becomes the usage chunk when the client asked for
it, followed by ``[DONE]``.
"""

from __future__ import annotations

import time
from typing import Any

from onyproxy.errors import GatewayError
from onyproxy.sse import Event
from onyproxy.translate import Context
from onyproxy.translate.gemini_common import openai_finish_reason, openai_usage, pick
from onyproxy.translate.gemini_provider_response import completion_id, split_parts


class GeminiToOpenAIStream:
    """One stream's converter; ``feed`` each Gemini event, then ``finish``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.id: str | None = None
        self.created = int(time.time())
        self.usage: dict[str, Any] | None = None
        self.started: set[int] = set()  # candidates whose first delta (with the role) went out
        self.calls: dict[int, int] = {}  # candidate index -> tool calls sent so far

    def feed(self, event: Event) -> list[Event]:
        obj = event.json()
        if not isinstance(obj, dict):
            return []
        if isinstance(obj.get("error"), dict):  # an error reported inside the stream
            error = obj["error"]
            raise GatewayError(502, "api_error", str(error.get("message") or "Upstream error."),
                               code="upstream_stream_error")
        self.id = self.id or completion_id(obj)
        self.usage = openai_usage(pick(obj, "usageMetadata")) or self.usage
        chunks: list[dict[str, Any]] = []
        for position, candidate in enumerate(pick(obj, "candidates", [])):
            chunks += self._candidate(candidate, pick(candidate, "index", position))
        if not pick(obj, "candidates") and pick(pick(obj, "promptFeedback"), "blockReason"):
            chunks.append(self._chunk(0, self._delta(0, {}), "content_filter"))
        return [Event.of(chunk) for chunk in chunks]

    def finish(self) -> list[Event]:
        events = []
        if self.ctx.include_usage and self.usage is not None:
            events.append(Event.of(self._envelope([], self.usage)))
        events.append(Event("[DONE]"))
        return events

    def _candidate(self, candidate: dict[str, Any], index: int) -> list[dict[str, Any]]:
        text, calls = split_parts(candidate)
        chunks = []
        delta: dict[str, Any] = {}
        if text:
            delta["content"] = text
        if calls:
            first = self.calls.get(index, 0)
            delta["tool_calls"] = [{"index": first + n, **call} for n, call in enumerate(calls)]
            self.calls[index] = first + len(calls)
        if delta or index not in self.started:
            chunks.append(self._chunk(index, self._delta(index, delta), None))
        reason = pick(candidate, "finishReason")
        if reason:
            finish = openai_finish_reason(reason, self.calls.get(index, 0) > 0)
            chunks.append(self._chunk(index, {}, finish))
        return chunks

    def _delta(self, index: int, delta: dict[str, Any]) -> dict[str, Any]:
        if index in self.started:
            return delta
        self.started.add(index)
        return {"role": "assistant", "content": delta.pop("content", ""), **delta}

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._envelope([choice], None)

    def _envelope(self, choices: list[dict[str, Any]],
                  usage: dict[str, Any] | None) -> dict[str, Any]:
        self.id = self.id or completion_id({})
        out = {"id": self.id, "object": "chat.completion.chunk",
               "created": self.created, "model": self.ctx.model, "choices": choices}
        if usage is not None:
            out["usage"] = usage
        return out
