"""Translation between API shapes: requests, responses and streams.

Shapes: ``openai`` (Chat Completions), ``openai-responses``, ``anthropic`` (Messages), ``gemini``.
Same shape in and out is the identity and costs nothing. ``openai`` is the hub: each other shape
registers its translations to and from it, as small pure functions (requests, responses) and
stateful stream converters (one per stream); any other pair goes through the hub. A pair with no
translator is a clear 400, never a silent guess.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from onyproxy.errors import GatewayError
from onyproxy.sse import Event


@dataclass(slots=True)
class Context:
    """What a translator may need beyond the payload itself."""

    model: str  # the model name the client asked for
    operation: str
    request: dict[str, Any] = field(default_factory=dict)  # the client's request, its shape
    include_usage: bool = False  # OpenAI stream clients that asked for the usage chunk
    stream: bool = False  # the client asked for a stream (Gemini says so in the URL, not the body)


class StreamConverter(Protocol):
    """Turns one stream's events of one shape into events of another, in order."""

    def feed(self, event: Event) -> list[Event]: ...

    def finish(self) -> list[Event]: ...


RequestFn = Callable[[dict[str, Any], Context], dict[str, Any]]
ResponseFn = Callable[[dict[str, Any], Context], dict[str, Any]]
StreamFactory = Callable[[Context], StreamConverter]

_requests: dict[tuple[str, str, str], RequestFn] = {}
_responses: dict[tuple[str, str, str], ResponseFn] = {}
_streams: dict[tuple[str, str], StreamFactory] = {}


def register(src: str, dst: str, operation: str, *, request: RequestFn | None = None,
             response: ResponseFn | None = None, stream: StreamFactory | None = None) -> None:
    """Make ``src`` → ``dst`` translatable for ``operation``.

    ``request`` maps a ``src`` request to ``dst``; ``response`` and ``stream`` map a ``dst``
    answer back to ``src``.
    """
    if request is not None:
        _requests[src, dst, operation] = request
    if response is not None:
        _responses[src, dst, operation] = response
    if stream is not None:
        _streams[src, dst] = stream


HUB = "openai"


def _hops(src: str, dst: str, operation: str) -> list[tuple[str, str]] | None:
    """The registered steps from ``src`` to ``dst``: direct, or through the hub."""
    if (src, dst, operation) in _requests:
        return [(src, dst)]
    if (src, HUB, operation) in _requests and (HUB, dst, operation) in _requests:
        return [(src, HUB), (HUB, dst)]
    return None


def can_translate(src: str, dst: str, operation: str) -> bool:
    return src == dst or _hops(src, dst, operation) is not None


def choose_shape(client_shape: str, shapes: tuple[str, ...], operation: str,
                 provider: str) -> str:
    """The shape to speak to a provider: the client's own if it speaks it, else one we map to."""
    if client_shape in shapes:
        return client_shape
    for shape in shapes:
        if can_translate(client_shape, shape, operation):
            return shape
    raise GatewayError(400, "invalid_request_error",
                       f"This API ({client_shape}, {operation}) cannot be served by provider "
                       f"'{provider}'.", code="unsupported_route")


def request(body: dict[str, Any], src: str, dst: str, ctx: Context) -> dict[str, Any]:
    if src == dst:
        return body
    for a, b in _hops(src, dst, ctx.operation) or ():
        body = _requests[a, b, ctx.operation](body, ctx)
    return body


def response(body: dict[str, Any], src: str, dst: str, ctx: Context) -> dict[str, Any]:
    """Map a provider answer in ``dst`` back to the client's ``src``."""
    if src == dst:
        return body
    for a, b in reversed(_hops(src, dst, ctx.operation) or ()):
        body = _responses[a, b, ctx.operation](body, ctx)
    return body


async def stream(events: AsyncIterator[Event], src: str, dst: str,
                 ctx: Context) -> AsyncIterator[Event]:
    """Map a provider stream in ``dst`` back to the client's ``src``, event by event."""
    converters = [_streams[a, b](ctx) for a, b in reversed(_hops(src, dst, ctx.operation) or ())]
    async for event in events:
        for out in _feed(converters, [event]):
            yield out
    for index in range(len(converters)):
        tail = converters[index].finish()
        for out in _feed(converters[index + 1:], tail):
            yield out


def _feed(converters: list[StreamConverter], events: list[Event]) -> list[Event]:
    for converter in converters:
        events = [out for event in events for out in converter.feed(event)]
    return events


# Last, as importing each of these registers its translations with the functions above.
from onyproxy.translate import (  # noqa: E402
    anthropic,  # noqa: F401
    gemini,  # noqa: F401
    responses,  # noqa: F401
)
