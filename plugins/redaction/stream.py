"""Restore pseudonyms in streamed answers, also when a placeholder is split over several events.

Text arrives in pieces (``[EMA`` then ``IL_1] wrote``). Each text channel (a choice's content,
a content block, a tool call's arguments) keeps back a tail that may be the start of an issued
placeholder and puts it in front of that channel's next piece. When the channel ends (a finish
reason, ``content_block_stop``, ``*.done``), what is still held goes out as plain text: a
placeholder that never completed was not one.

Events are in the client's shape; one function per shape changes them with ``event.replace``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable
from typing import Any

from onyproxy.sse import Event
from plugins.redaction.vault import Vault


class StreamRestorer:
    """The held-back tails of one stream, by channel."""

    __slots__ = ("held", "templates", "vault")

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.held: dict[Hashable, str] = {}
        self.templates: dict[Hashable, dict[str, Any]] = {}  # last delta event per channel

    def feed(self, channel: Hashable, text: str, json_text: bool = False) -> str:
        """What of ``text`` (after anything held) can be sent now, placeholders restored."""
        held = self.held.pop(channel, None)
        if held:
            text = held + text
        cut = self.vault.open_tail(text)
        if cut < len(text):
            self.held[channel] = text[cut:]
            text = text[:cut]
        return self.vault.restore(text, json_text)

    def flush(self, channel: Hashable, json_text: bool = False) -> str:
        """The channel ended: what it still holds, restored."""
        return self.vault.restore(self.held.pop(channel, ""), json_text)

    def restore_event(self, shape: str, event: Event) -> None:
        """Restore placeholders in ``event`` (client ``shape``), holding back split ones."""
        if not self.held and "[" not in event.data:
            return  # nothing held and nothing that could open a placeholder
        handler = _SHAPES.get(shape)
        obj = event.json()
        if handler is not None and isinstance(obj, dict):
            handler(self, event, obj)


def restore_values(vault: Vault, value: Any) -> bool:
    """Restore placeholders in every string inside ``value``, in place; True if any changed.

    ``arguments`` strings are JSON text and get JSON-escaped values. Anthropic thinking blocks
    are left alone: the provider checks their signature against the text it produced.
    """
    changed = False
    if isinstance(value, dict):
        if value.get("type") == "thinking":
            return False
        for key, item in value.items():
            if isinstance(item, str):
                new = vault.restore(item, key == "arguments")
                if new != item:
                    value[key], changed = new, True
            elif isinstance(item, dict | list):
                changed |= restore_values(vault, item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                new = vault.restore(item)
                if new != item:
                    value[index], changed = new, True
            elif isinstance(item, dict | list):
                changed |= restore_values(vault, item)
    return changed


def _feed(r: StreamRestorer, obj: Any, key: str, channel: Hashable,
          json_text: bool = False) -> bool:
    text = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(text, str):
        return False
    new = r.feed(channel, text, json_text)
    if new == text:
        return False
    obj[key] = new
    return True


def _emit_before(event: Event, extra: dict[str, Any], name: str | None) -> None:
    # A chunk hook can change the event it is given but not add one; the held text goes out
    # as its own event written just ahead of this one (Event.encode returns ``raw`` as is).
    event.raw = Event.of(extra, name).encode() + event.encode()


# --- OpenAI Chat Completions chunks -----------------------------------------------------------

def _openai(r: StreamRestorer, event: Event, obj: dict[str, Any]) -> None:
    changed = False
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", 0)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            changed |= _feed(r, delta, "content", ("content", index))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    channel = ("tool", index, call.get("index", 0))
                    changed |= _feed(r, call.get("function"), "arguments", channel, True)
        if choice.get("finish_reason") is not None:
            changed |= _flush_choice(r, choice, index)
    if changed:
        event.replace(obj)


def _flush_choice(r: StreamRestorer, choice: dict[str, Any], index: int) -> bool:
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        delta = choice["delta"] = {}
    changed = False
    rest = r.flush(("content", index))
    if rest:
        delta["content"] = (delta.get("content") or "") + rest
        changed = True
    for channel in [c for c in r.held if isinstance(c, tuple) and c[:2] == ("tool", index)]:
        rest = r.flush(channel, True)
        calls = delta.setdefault("tool_calls", [])
        call = next((c for c in calls if c.get("index", 0) == channel[2]), None)
        if call is None:
            call = {"index": channel[2], "function": {"arguments": ""}}
            calls.append(call)
        function = call.setdefault("function", {})
        function["arguments"] = (function.get("arguments") or "") + rest
        changed = True
    return changed


# --- Anthropic Messages events ----------------------------------------------------------------

_ANTHROPIC_DELTAS = {"text_delta": ("text", False), "input_json_delta": ("partial_json", True)}


def _anthropic(r: StreamRestorer, event: Event, obj: dict[str, Any]) -> None:
    kind = obj.get("type")
    index = obj.get("index", 0)
    if kind == "content_block_delta":
        delta = obj.get("delta")
        key, json_text = _ANTHROPIC_DELTAS.get(delta.get("type"), (None, False)) \
            if isinstance(delta, dict) else (None, False)
        if key is not None:
            r.templates[index] = obj
            if _feed(r, delta, key, index, json_text):
                event.replace(obj)
    elif kind == "content_block_stop" and index in r.held:
        template = r.templates.get(index, {})
        delta_type = (template.get("delta") or {}).get("type", "text_delta")
        key, json_text = _ANTHROPIC_DELTAS.get(delta_type, ("text", False))
        extra = {"type": "content_block_delta", "index": index,
                 "delta": {"type": delta_type, key: r.flush(index, json_text)}}
        _emit_before(event, extra, "content_block_delta")
    elif restore_values(r.vault, obj):
        event.replace(obj)


# --- Gemini chunks ----------------------------------------------------------------------------

def _gemini(r: StreamRestorer, event: Event, obj: dict[str, Any]) -> None:
    changed = False
    for candidate in obj.get("candidates") or ():
        if not isinstance(candidate, dict):
            continue
        index = candidate.get("index", 0)
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        texts = []
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str) \
                    and not part.get("thought"):
                texts.append(part)
                changed |= _feed(r, part, "text", index)
            elif isinstance(part, dict):
                changed |= restore_values(r.vault, part)
        if candidate.get("finishReason") and index in r.held:
            rest = r.flush(index)
            if texts:
                texts[-1]["text"] += rest
            else:
                content = candidate.setdefault("content", {"role": "model"})
                content.setdefault("parts", []).append({"text": rest})
            changed = True
    if changed:
        event.replace(obj)


# --- OpenAI Responses events ------------------------------------------------------------------

def _responses(r: StreamRestorer, event: Event, obj: dict[str, Any]) -> None:
    kind = obj.get("type")
    channel, json_text = _responses_channel(obj)
    if kind in ("response.output_text.delta", "response.function_call_arguments.delta"):
        r.templates[channel] = obj
        if _feed(r, obj, "delta", channel, json_text):
            event.replace(obj)
        return
    changed = restore_values(r.vault, obj)
    if changed:
        event.replace(obj)
    if kind in ("response.output_text.done", "response.function_call_arguments.done") \
            and channel in r.held:
        extra = copy.copy(r.templates.get(channel) or {"type": kind.replace(".done", ".delta")})
        extra["delta"] = r.flush(channel, json_text)
        _emit_before(event, extra, extra.get("type"))


def _responses_channel(obj: dict[str, Any]) -> tuple[Hashable, bool]:
    if obj.get("type", "").startswith("response.function_call_arguments."):
        return ("args", obj.get("item_id"), obj.get("output_index")), True
    return ("text", obj.get("item_id"), obj.get("content_index")), False


_SHAPES: dict[str, Callable[[StreamRestorer, Event, dict[str, Any]], None]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "openai-responses": _responses,
}
