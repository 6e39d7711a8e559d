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

    __slots__ = ("_json", "data", "event", "raw")

    def __init__(self, data: str, event: str | None = None, raw: bytes | None = None,
                 obj: Any = None) -> None:
        self.data = data
        self.event = event
        self.raw = raw  # exact bytes as received; None once changed or when built locally
        self._json = obj

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


async def parse_sse(lines: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """Yield events from an iterator of lines (as ``aiohttp`` ``StreamReader`` gives them)."""
    data: list[str] = []
    name: str | None = None
    raw = bytearray()
    async for line in lines:
        raw += line
        text = line.decode("utf-8").rstrip("\r\n")
        if not text:
            if data:
                yield Event("\n".join(data), name, _normalised(raw))
            data, name, raw = [], None, bytearray()
            continue
        field, _, value = text.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    if data:
        yield Event("\n".join(data), name, _normalised(raw) + b"\n")


def _normalised(raw: bytearray) -> bytes:
    # Some upstreams end events with CRLF; clients of the gateway always get LF-framed events.
    if b"\r" in raw:
        return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").__bytes__()
    return bytes(raw)
