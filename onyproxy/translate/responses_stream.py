"""Chat Completions stream → OpenAI Responses stream events (a Responses client).

Responses streams are named events (``event: response.output_text.delta``) whose data carries
the same ``type`` and a ``sequence_number`` counting from 0. For each answer:
``response.created``, ``response.in_progress``; per output item ``response.output_item.added``
then its content (``response.content_part.added`` + ``response.output_text.delta``… for text,
``response.function_call_arguments.delta``… for a tool call), closed by the matching ``.done``
events and ``response.output_item.done``; finally ``response.completed`` (or
``response.incomplete``) with the whole response and its usage. There is no ``[DONE]``.

Items are closed when the Chat stream gives its finish reason; the final event waits for the
end of the stream, because the usage chunk comes after the finish reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from onyproxy.sse import Event
from onyproxy.translate.responses_response import (
    INCOMPLETE,
    envelope,
    function_call_item,
    message_item,
    new_id,
    output_text,
    responses_usage,
)

if TYPE_CHECKING:
    from onyproxy.translate import Context


@dataclass(slots=True)
class _Item:
    """One output item being streamed."""

    id: str
    index: int  # output_index
    kind: str  # "message" | "function_call"
    text: str = ""  # the message text, or the call's arguments
    call_id: str = ""
    name: str = ""
    closed: bool = False


class ResponsesStream:
    """Converts one Chat Completions chunk stream into Responses events, in order."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.response_id = new_id("resp")
        self.created_at = int(time.time())
        self.sequence = 0
        self.started = False
        self.ended = False
        self.items: list[_Item] = []
        self.calls: dict[int, _Item] = {}  # Chat tool-call index → its item
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def feed(self, event: Event) -> list[Event]:
        if self.ended:
            return []
        out = self._start()
        if event.is_done:
            return out + self._complete()
        chunk = event.json()
        if not isinstance(chunk, dict):
            return out
        if isinstance(chunk.get("error"), dict):
            self.ended = True
            return [*out, self._error(chunk["error"])]
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) == 0:
                out += self._choice(choice)
        return out

    def finish(self) -> list[Event]:
        if self.ended:
            return []
        return self._start() + self._complete()

    # --- the parts of an answer -----------------------------------------------------------

    def _start(self) -> list[Event]:
        if self.started:
            return []
        self.started = True
        response = self._response("in_progress", [], None)
        return [self._emit("response.created", response=response),
                self._emit("response.in_progress", response=response)]

    def _choice(self, choice: dict[str, Any]) -> list[Event]:
        delta = choice.get("delta") or {}
        out = []
        if delta.get("content"):
            out += self._text(delta["content"])
        for call in delta.get("tool_calls") or []:
            out += self._tool_call(call)
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
            out += self._close_items()
        return out

    def _text(self, delta: str) -> list[Event]:
        out = []
        item = self.items[-1] if self.items else None
        if item is None or item.kind != "message" or item.closed:
            out += self._close_items()
            item = self._add(_Item(new_id("msg"), len(self.items), "message"))
            out += [self._emit("response.output_item.added", output_index=item.index,
                               item=message_item(item.id, [], "in_progress")),
                    self._emit("response.content_part.added", **self._where(item),
                               part=output_text(""))]
        item.text += delta
        out.append(self._emit("response.output_text.delta", **self._where(item), delta=delta,
                              logprobs=[]))
        return out

    def _tool_call(self, call: dict[str, Any]) -> list[Event]:
        out = []
        function = call.get("function") or {}
        item = self.calls.get(call.get("index", 0))
        if item is None:
            out += self._close_messages()
            item = self._add(_Item(new_id("fc"), len(self.items), "function_call",
                                   call_id=call.get("id") or new_id("call"),
                                   name=function.get("name") or ""))
            self.calls[call.get("index", 0)] = item
            out.append(self._emit("response.output_item.added", output_index=item.index,
                                  item=self._item_object(item, "in_progress")))
        if function.get("arguments"):
            item.text += function["arguments"]
            out.append(self._emit("response.function_call_arguments.delta",
                                  item_id=item.id, output_index=item.index,
                                  delta=function["arguments"]))
        return out

    def _close_messages(self) -> list[Event]:
        return [e for item in self.items if item.kind == "message" and not item.closed
                for e in self._close(item)]

    def _close_items(self) -> list[Event]:
        return [e for item in self.items if not item.closed for e in self._close(item)]

    def _close(self, item: _Item) -> list[Event]:
        item.closed = True
        done = self._item_object(item, self._item_status())
        if item.kind == "function_call":
            return [self._emit("response.function_call_arguments.done", item_id=item.id,
                               output_index=item.index, arguments=item.text),
                    self._emit("response.output_item.done", output_index=item.index, item=done)]
        return [self._emit("response.output_text.done", **self._where(item), text=item.text,
                           logprobs=[]),
                self._emit("response.content_part.done", **self._where(item),
                           part=output_text(item.text)),
                self._emit("response.output_item.done", output_index=item.index, item=done)]

    def _complete(self) -> list[Event]:
        out = self._close_items()
        self.ended = True
        reason = INCOMPLETE.get(self.finish_reason or "")
        status = "incomplete" if reason else "completed"
        output = [self._item_object(item, self._item_status()) for item in self.items]
        response = self._response(status, output, responses_usage(self.usage), reason)
        out.append(self._emit(f"response.{status}", response=response))
        return out

    def _error(self, error: dict[str, Any]) -> Event:
        return self._emit("error", code=error.get("code"), message=error.get("message") or
                          "The provider's stream failed.", param=error.get("param"))

    # --- building blocks ------------------------------------------------------------------

    def _add(self, item: _Item) -> _Item:
        self.items.append(item)
        return item

    def _item_status(self) -> str:
        return "incomplete" if INCOMPLETE.get(self.finish_reason or "") else "completed"

    def _item_object(self, item: _Item, status: str) -> dict[str, Any]:
        if item.kind == "function_call":
            return function_call_item(item.id, item.call_id, item.name, item.text, status)
        content = [output_text(item.text)] if status != "in_progress" else []
        return message_item(item.id, content, status)

    @staticmethod
    def _where(item: _Item) -> dict[str, Any]:
        return {"item_id": item.id, "output_index": item.index, "content_index": 0}

    def _response(self, status: str, output: list[dict[str, Any]],
                  usage: dict[str, Any] | None, reason: str | None = None) -> dict[str, Any]:
        return envelope(self.ctx, response_id=self.response_id, created_at=self.created_at,
                        status=status, output=output, usage=usage, incomplete_reason=reason)

    def _emit(self, kind: str, **fields: Any) -> Event:
        obj = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return Event.of(obj, kind)
