"""Anthropic Messages stream → OpenAI ``chat.completion.chunk`` stream, event by event.

Anthropic: ``message_start``, then per content block ``content_block_start`` /
``content_block_delta`` (``text_delta``, ``input_json_delta``) / ``content_block_stop``,
``message_delta`` (stop reason, cumulative usage), ``message_stop``; ``ping`` anywhere.
OpenAI: a role chunk, content deltas, ``tool_calls`` deltas (index, id and name first, then
argument fragments), a chunk with ``finish_reason``, the usage chunk, then ``[DONE]``.

The usage chunk is always produced, like the OpenAI adapter always asks for it: the proxy strips
it for OpenAI clients that did not ask, and other shapes translated through the hub need it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from onyproxy.sse import DONE, Event
from onyproxy.translate.anthropic_response import finish_reason, openai_usage

if TYPE_CHECKING:
    from onyproxy.translate import Context


class AnthropicToOpenAIStream:
    """One stream's state: ids, which Anthropic block is which tool call, usage so far."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.id = ""
        self.created = int(time.time())
        self.tool_index: dict[int, int] = {}  # Anthropic block index → OpenAI tool_calls index
        self.usage: dict[str, Any] = {}
        self.done = False

    def feed(self, event: Event) -> list[Event]:
        obj = event.json()
        if not isinstance(obj, dict):
            return []
        handler = _HANDLERS.get(obj.get("type") or event.event or "")
        return handler(self, obj) if handler else []  # ping and future event types: nothing

    def finish(self) -> list[Event]:
        return []

    # -- events ---------------------------------------------------------------------------

    def message_start(self, obj: dict[str, Any]) -> list[Event]:
        message = obj.get("message") or {}
        self.id = message.get("id") or ""
        self.usage = dict(message.get("usage") or {})
        return [self.chunk({"role": "assistant", "content": ""})]

    def block_start(self, obj: dict[str, Any]) -> list[Event]:
        block = obj.get("content_block") or {}
        if block.get("type") == "text":
            text = block.get("text")
            return [self.chunk({"content": text})] if text else []
        if block.get("type") != "tool_use":
            return []  # thinking blocks: OpenAI's chunk has no place for them
        index = self.tool_index[obj.get("index", 0)] = len(self.tool_index)
        call = {"index": index, "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": ""}}
        return [self.chunk({"tool_calls": [call]})]

    def block_delta(self, obj: dict[str, Any]) -> list[Event]:
        delta = obj.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self.chunk({"content": delta["text"]})]
        index = self.tool_index.get(obj.get("index", 0))
        if delta.get("type") == "input_json_delta" and delta.get("partial_json") \
                and index is not None:
            call = {"index": index, "function": {"arguments": delta["partial_json"]}}
            return [self.chunk({"tool_calls": [call]})]
        return []

    def message_delta(self, obj: dict[str, Any]) -> list[Event]:
        # Counts on message_delta are cumulative and overwrite those of message_start.
        self.usage.update({k: v for k, v in (obj.get("usage") or {}).items() if v is not None})
        reason = finish_reason((obj.get("delta") or {}).get("stop_reason"))
        return [self.chunk({}, reason)]

    def message_stop(self, obj: dict[str, Any]) -> list[Event]:
        if self.done:
            return []
        self.done = True
        usage_chunk = {**self.envelope(), "choices": [], "usage": openai_usage(self.usage)}
        return [Event.of(usage_chunk), Event(DONE)]

    # -- building ------------------------------------------------------------------------

    def envelope(self) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.ctx.model}

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> Event:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return Event.of({**self.envelope(), "choices": [choice]})


_HANDLERS = {
    "message_start": AnthropicToOpenAIStream.message_start,
    "content_block_start": AnthropicToOpenAIStream.block_start,
    "content_block_delta": AnthropicToOpenAIStream.block_delta,
    "message_delta": AnthropicToOpenAIStream.message_delta,
    "message_stop": AnthropicToOpenAIStream.message_stop,
}
