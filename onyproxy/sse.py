"""Server-sent events: parse an upstream byte stream into events, and encode them back.

Events keep their original bytes so that a stream that needs no translation and no change is
relayed without a JSON round-trip; :meth:`Event.replace` marks one as changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE = "[DONE]"


class Event:
    """One SSE event: optional ``event`` name and its ``data`` text (JSON, or ``[DONE]``)."""

    __slots__ = ("_json", "data", "event", "more_ready", "raw")

    def __init__(self, data: str, event: str | None = None, raw: bytes | None = None,
                 obj: Any = None) -> None:
        self.data = data
        self.event = event
        self.raw = raw  # exact bytes as received; None once changed or when built locally
        self._json = obj
        self.more_ready = False  # another event was received with this one (see parse_sse)

    @classmethod
    def of(cls, obj: Any, event: str | None = None) -> Event:
        """An event carrying ``obj`` as JSON."""
        return cls(orjson.dumps(obj).decode(), event, obj=obj)

    @property
    def is_done(self) -> bool:
        return self.data == DONE

    def json(self) -> Any:
        """The data parsed as JSON (cached); ``None`` for ``[DONE]`` or non-JSON data."""
        if self._json is None and self.data and not self.is_done:
            try:
                self._json = orjson.loads(self.data)
            except orjson.JSONDecodeError:
                return None
        return self._json

    def replace(self, obj: Any) -> None:
        """Change the event's payload; it is re-encoded when written."""
        self._json = obj
        self.data = orjson.dumps(obj).decode()
        self.raw = None

    def encode(self) -> bytes:
        """Wire bytes, reusing what was received when nothing changed."""
        if self.raw is not None:
            return self.raw
        head = f"event: {self.event}\n" if self.event else ""
        lines = "".join(f"data: {line}\n" for line in self.data.split("\n"))
        return f"{head}{lines}\n".encode()


def has_usage(data: str) -> bool:
    """Whether event ``data`` may carry token usage: a ``"usage"`` key whose value is not null.

    OpenAI-compatible servers put ``"usage": null`` on every chunk once a stream asks for
    usage; telling those apart without a JSON parse saves one parse per event. Text inside
    JSON strings cannot fake the key: its quotes are escaped.
    """
    at = data.find('"usage"')
    if at < 0:
        return False
    end, size = at + 7, len(data)
    while end < size and data[end] in " \t\r\n:":
        end += 1
    return not data.startswith("null", end) or data.find('"usage"', end) >= 0


async def parse_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """Yield events from byte chunks split anywhere (network reads, or lines).

    Events that arrive together in one chunk are yielded with ``more_ready`` set on all but the
    last, so a relay can write them with one send instead of one each.
    """
    buffer = b""
    async for chunk in chunks:
        buffer = buffer + chunk if buffer else bytes(chunk)
        if b"\r" in buffer:
            buffer = _normalised(buffer)
        events, buffer = _split(buffer)
        if events:
            for event in events[:-1]:
                event.more_ready = True
            for event in events:
                yield event
    if buffer.endswith(b"\r"):
        buffer = buffer[:-1] + b"\n"
    block = buffer.lstrip(b"\n").rstrip(b"\n")
    if block:
        event = _event(block, block + b"\n\n")
        if event is not None:
            yield event


def _split(buffer: bytes) -> tuple[list[Event], bytes]:
    """The complete events at the start of ``buffer`` (LF-framed), and the rest."""
    events: list[Event] = []
    start, size = 0, len(buffer)
    while True:
        while start < size and buffer[start] == 10:  # blank lines between events
            start += 1
        end = buffer.find(b"\n\n", start)
        if end < 0:
            return events, buffer[start:]
        event = _event(buffer[start:end], buffer[start:end + 2])
        if event is not None:
            events.append(event)
        start = end + 2


def _event(block: bytes, raw: bytes) -> Event | None:
    """One event from its lines (without the blank line that ended it); ``None`` if no data."""
    if block.startswith(b"data: ") and b"\n" not in block:  # the usual single data line
        return Event(block[6:].decode("utf-8"), None, raw)
    data: list[str] = []
    name: str | None = None
    for line in block.decode("utf-8").split("\n"):
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    return Event("\n".join(data), name, raw) if data else None


def _normalised(buffer: bytes) -> bytes:
    # Some upstreams end lines with CRLF (or CR); clients of the gateway always get LF-framed
    # events. A CR at the very end is kept: its LF may come with the next chunk.
    held = buffer.endswith(b"\r")
    if held:
        buffer = buffer[:-1]
    buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return buffer + b"\r" if held else buffer
