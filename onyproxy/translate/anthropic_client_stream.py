"""OpenAI ``chat.completion.chunk`` stream → Anthropic Messages stream, event by event.

Anthropic's sequence: ``message_start``, ``ping``, then one block at a time with increasing
``index`` (``content_block_start``, ``content_block_delta``..., ``content_block_stop``): text
first, then one ``tool_use`` block per tool call, its arguments as ``input_json_delta``
fragments; then ``message_delta`` (stop reason, usage) and ``message_stop``.

OpenAI only reports usage in its last chunk (the OpenAI adapter always asks for it), so
``message_start`` carries zero input tokens and ``message_delta`` the real, cumulative counts:
Anthropic documents those as cumulative and its SDK takes them from there.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from onyproxy.errors import GatewayError
from onyproxy.sse import Event
from onyproxy.translate.anthropic_client_response import anthropic_usage, message_id, stop_reason

if TYPE_CHECKING:
    from onyproxy.translate import Context


class OpenAIToAnthropicStream:
    """One stream's state: the open block, tool calls seen, stop reason and usage."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.started = False
        self.ended = False
        self.open: int | None = None  # index of the open content block
        self.open_type = ""
        self.next_index = 0
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool_calls index → block index
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def feed(self, event: Event) -> list[Event]:
        if event.is_done:
            return self.end()
        obj = event.json()
        if not isinstance(obj, dict):
            return []
        if obj.get("error") and not obj.get("choices"):
            raise GatewayError(502, "api_error", "The provider reported an error mid-stream.",
                               code="upstream_stream_error")
        out = self.start(obj)
        for choice in obj.get("choices") or []:
            if choice.get("index", 0) == 0:  # Anthropic answers have one candidate
                out += self.choice(choice)
        if obj.get("usage"):
            self.usage = obj["usage"]
            if self.stop_reason is not None:
                out += self.end()  # the usage chunk is OpenAI's last before [DONE]
        return out

    def finish(self) -> list[Event]:
        # An upstream that ends without [DONE] still gets a well-formed Anthropic ending.
        return self.end() if self.started else []

    # -- OpenAI side ----------------------------------------------------------------------

    def start(self, obj: dict[str, Any]) -> list[Event]:
        if self.started:
            return []
        self.started = True
        message = {"id": message_id(obj.get("id")), "type": "message", "role": "assistant",
                   "model": self.ctx.model, "content": [], "stop_reason": None,
                   "stop_sequence": None, "usage": anthropic_usage(None)}
        return [_event("message_start", {"message": message}), _event("ping", {})]

    def choice(self, choice: dict[str, Any]) -> list[Event]:
        delta = choice.get("delta") or {}
        out: list[Event] = []
        text = delta.get("content") or delta.get("refusal")
        if text:
            out += self.text(text)
        if delta.get("refusal"):
            self.stop_reason = "refusal"
        for call in delta.get("tool_calls") or []:
            out += self.tool_call(call)
        if choice.get("finish_reason"):
            out += self.close()
            if self.stop_reason != "refusal":
                self.stop_reason = stop_reason(choice["finish_reason"])
        return out

    def text(self, text: str) -> list[Event]:
        out = [] if self.open_type == "text" else self.open_block({"type": "text", "text": ""})
        delta = {"type": "text_delta", "text": text}
        return [*out, _event("content_block_delta", {"index": self.open, "delta": delta})]

    def tool_call(self, call: dict[str, Any]) -> list[Event]:
        key = call.get("index", 0)
        function = call.get("function") or {}
        out: list[Event] = []
        if key not in self.tool_blocks:
            out += self.open_block({"type": "tool_use",
                                    "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                                    "name": function.get("name") or "", "input": {}})
            self.tool_blocks[key] = self.next_index - 1
        if function.get("arguments"):
            # OpenAI sends each call's fragments in order; the block index keeps them apart
            # even if a server interleaved them.
            delta = {"type": "input_json_delta", "partial_json": function["arguments"]}
            out.append(_event("content_block_delta",
                              {"index": self.tool_blocks[key], "delta": delta}))
        return out

    # -- Anthropic side -------------------------------------------------------------------

    def open_block(self, block: dict[str, Any]) -> list[Event]:
        out = self.close()
        self.open, self.open_type = self.next_index, block["type"]
        self.next_index += 1
        return [*out, _event("content_block_start", {"index": self.open, "content_block": block})]

    def close(self) -> list[Event]:
        if self.open is None:
            return []
        index, self.open, self.open_type = self.open, None, ""
        return [_event("content_block_stop", {"index": index})]

    def end(self) -> list[Event]:
        if self.ended:
            return []
        out = self.start({})
        self.ended = True
        out += self.close()
        delta = {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None}
        out.append(_event("message_delta", {"delta": delta, "usage": anthropic_usage(self.usage)}))
        return [*out, _event("message_stop", {})]


def _event(name: str, data: dict[str, Any]) -> Event:
    """An Anthropic SSE event: the name both as ``event:`` and as the data's ``type``."""
    return Event.of({"type": name, **data}, name)
