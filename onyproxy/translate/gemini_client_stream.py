"""OpenAI ``chat.completion.chunk`` stream -> Gemini stream (a Gemini client).

Text deltas go out at once, one ``GenerateContentResponse`` event each. Tool-call deltas carry
argument fragments, while a Gemini ``functionCall`` must be whole, so calls are collected and
sent with the finishing event. That event waits for the usage chunk, which OpenAI sends right
after the finish, so it can carry ``usageMetadata`` as Gemini's last event does.
"""

from __future__ import annotations

from typing import Any

from onyproxy.errors import GatewayError
from onyproxy.sse import Event
from onyproxy.translate import Context
from onyproxy.translate.gemini_client_response import arguments, response_id
from onyproxy.translate.gemini_common import gemini_finish_reason, gemini_usage


class OpenAIToGeminiStream:
    """One stream's converter; ``feed`` each OpenAI event, then ``finish``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.id: str | None = None
        self.calls: dict[int, dict[int, dict[str, Any]]] = {}  # choice -> index -> call
        self.finished: dict[int, str] = {}  # choice index -> Gemini finishReason
        self.usage: dict[str, Any] | None = None

    def feed(self, event: Event) -> list[Event]:
        if event.is_done:
            return self.flush()
        obj = event.json()
        if not isinstance(obj, dict):
            return []
        if isinstance(obj.get("error"), dict):
            raise GatewayError(502, "api_error", str(obj["error"].get("message") or
                                                    "Upstream error."),
                               code="upstream_stream_error")
        self.id = self.id or response_id(obj)
        candidates = [c for choice in obj.get("choices") or [] if (c := self.choice(choice))]
        events = [self.event(candidates)] if candidates else []
        if obj.get("usage"):
            self.usage = gemini_usage(obj["usage"])
            events += self.flush()
        return events

    def finish(self) -> list[Event]:
        return self.flush()

    def choice(self, choice: dict[str, Any]) -> dict[str, Any] | None:
        """The candidate for this chunk's text; tool calls and the finish are held back."""
        index = choice.get("index", 0)
        delta = choice.get("delta") or {}
        for call in delta.get("tool_calls") or []:
            self.collect(index, call)
        if choice.get("finish_reason"):
            self.finished[index] = gemini_finish_reason(choice["finish_reason"]) or "STOP"
        text = delta.get("content") or delta.get("refusal")
        if not text:
            return None
        return {"content": {"role": "model", "parts": [{"text": text}]}, "index": index}

    def collect(self, index: int, delta: dict[str, Any]) -> None:
        calls = self.calls.setdefault(index, {})
        call = calls.setdefault(delta.get("index", len(calls)),
                                {"id": None, "name": "", "arguments": ""})
        function = delta.get("function") or {}
        call["id"] = delta.get("id") or call["id"]
        call["name"] += function.get("name") or ""
        call["arguments"] += function.get("arguments") or ""

    def flush(self) -> list[Event]:
        """The finishing event, once: collected function calls, finishReason, usage."""
        if not self.finished and not self.calls:
            return []
        candidates = [self.final(index) for index in sorted({*self.finished, *self.calls})]
        self.finished, self.calls = {}, {}
        return [self.event(candidates, self.usage)]

    def final(self, index: int) -> dict[str, Any]:
        calls = self.calls.get(index, {})
        parts = [{"functionCall": {"id": call["id"], "name": call["name"],
                                   "args": arguments(call["arguments"])}}
                 for _, call in sorted(calls.items())]
        return {"content": {"role": "model", "parts": parts or [{"text": ""}]},
                "finishReason": self.finished.get(index, "STOP"), "index": index}

    def event(self, candidates: list[dict[str, Any]],
              usage: dict[str, Any] | None = None) -> Event:
        out: dict[str, Any] = {"candidates": candidates}
        if usage is not None:
            out["usageMetadata"] = usage
        out["modelVersion"] = self.ctx.model
        out["responseId"] = self.id or ""
        return Event.of(out)
