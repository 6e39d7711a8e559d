"""The test-side remote control shared by the fake provider upstreams.

Each fake app (``anthropic_upstream``, ``gemini_upstream``) owns one
:class:`UpstreamController`. A test reaches it through the ``start_fake_*``
helpers and uses it to

* read what reached the provider (``controller.requests``: method, path, query,
  headers, raw and parsed body), which is what gateway tests must assert on;
* script misbehaviour, one :class:`Fault` per coming request (``fail``,
  ``slow``, ``drop_stream``, ``error_in_stream``, ``script``), or for every
  request (``controller.always``);
* see concurrency (``in_flight``, ``max_in_flight``) and clients that went away
  mid-answer (``disconnects``).

The controller is applied by :func:`control_middleware`, so the provider handlers
only build honest answers and call :func:`send_events` for streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDict, CIMultiDictProxy


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake upstream received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    raw: bytes
    body: Any  # the parsed JSON body, or None when the body was not JSON


@dataclass(frozen=True)
class Fault:
    """How the fake should misbehave for one request.

    Fields combine: ``Fault(delay_s=2, status=529)`` answers 529 after two seconds.
    Stream-only fields are ignored by non-stream answers. ``match`` limits the fault
    to requests whose path contains that text (e.g. ``":streamGenerateContent"``).
    """

    status: int | None = None  # answer this HTTP error (provider shape) instead
    message: str | None = None  # error message; the provider's usual text otherwise
    error_type: str | None = None  # Anthropic error.type / Gemini error.status override
    retry_after: float | None = None  # Anthropic: retry-after header; Gemini: RetryInfo
    headers: dict[str, str] = field(default_factory=dict)  # extra headers on the error
    delay_s: float = 0.0  # wait this long before answering at all
    event_delay_s: float = 0.0  # stream: wait this long before each event
    drop_after_events: int | None = None  # stream: cut the TCP connection after K events
    error_after_events: int | None = None  # stream: send an in-stream error after K events
    match: str | None = None


NO_FAULT = Fault()
FAULT: web.RequestKey[Fault] = web.RequestKey("fault", Fault)

# Renders an error answer in the provider's shape: (status, message, error_type,
# retry_after) -> response.
ErrorRenderer = Callable[[int, str | None, str | None, float | None], web.Response]


class UpstreamController:
    """Records what reached a fake upstream and misbehaves on demand."""

    def __init__(self, render_error: ErrorRenderer) -> None:
        self.render_error = render_error
        self.requests: list[RecordedRequest] = []
        self.faults: deque[Fault] = deque()
        self.always: Fault | None = None  # applies whenever no scripted fault matches
        self.api_keys: set[str] | None = None  # None: any non-empty key is accepted
        self.in_flight = 0
        self.max_in_flight = 0
        self.disconnects = 0

    # -- scripting ------------------------------------------------------------------

    def script(self, *faults: Fault) -> None:
        """Queue faults; each one is used by the next request it matches."""
        self.faults.extend(faults)

    def fail(
        self,
        status: int,
        message: str | None = None,
        *,
        error_type: str | None = None,
        retry_after: float | None = None,
        times: int = 1,
        match: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests with an HTTP error in the provider's shape."""
        fault = Fault(
            status=status,
            message=message,
            error_type=error_type,
            retry_after=retry_after,
            match=match,
        )
        self.script(*[fault] * times)

    def slow(self, seconds: float, *, times: int = 1, match: str | None = None) -> None:
        """Hold the next ``times`` requests for ``seconds`` before answering."""
        self.script(*[Fault(delay_s=seconds, match=match)] * times)

    def drop_stream(self, after_events: int, *, times: int = 1) -> None:
        """Cut the connection of the next streamed answer after ``after_events`` events."""
        self.script(*[Fault(drop_after_events=after_events)] * times)

    def error_in_stream(self, after_events: int, *, status: int | None = None) -> None:
        """Send the provider's in-stream error after ``after_events`` events (HTTP 200
        already sent); ``status`` picks the error kind, by default Anthropic's 529
        overloaded_error or Gemini's 503 UNAVAILABLE."""
        self.script(Fault(error_after_events=after_events, status=status))

    def next_fault(self, path: str) -> Fault:
        """Take the first queued fault that matches ``path`` (or the standing one)."""
        for fault in self.faults:
            if fault.match is None or fault.match in path:
                self.faults.remove(fault)
                return fault
        return self.always or NO_FAULT

    # -- reading --------------------------------------------------------------------

    @property
    def last(self) -> RecordedRequest:
        """The most recent request; fails loudly when nothing arrived."""
        assert self.requests, "the fake upstream received no request"
        return self.requests[-1]

    def requests_to(self, path_part: str) -> list[RecordedRequest]:
        """The requests whose path contains ``path_part``."""
        return [r for r in self.requests if path_part in r.path]

    async def wait_for_requests(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` requests arrived, e.g. before cancelling a client."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                await asyncio.sleep(0.005)

    async def record(self, request: web.Request) -> RecordedRequest:
        """Store ``request`` as received; the body is parsed when it is JSON."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            raw=raw,
            body=body,
        )
        self.requests.append(recorded)
        return recorded

    def error_response(self, fault: Fault) -> web.Response:
        """The scripted HTTP error, with the fault's extra headers."""
        assert fault.status is not None
        response = self.render_error(
            fault.status, fault.message, fault.error_type, fault.retry_after
        )
        response.headers.update(fault.headers)
        return response


def control_middleware(controller: UpstreamController) -> Middleware:
    """Record every request, count it in flight and apply the scripted fault."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        await controller.record(request)
        fault = controller.next_fault(request.path)
        request[FAULT] = fault
        controller.in_flight += 1
        controller.max_in_flight = max(controller.max_in_flight, controller.in_flight)
        try:
            await _hold(request, fault.delay_s)
            # With error_after_events the status is for the in-stream error instead.
            if fault.status is not None and fault.error_after_events is None:
                return controller.error_response(fault)
            return await handler(request)
        except (ConnectionResetError, asyncio.CancelledError):
            # The client (the gateway under test) went away mid-answer: tests assert
            # that a cancelled client call also cancels the upstream call.
            controller.disconnects += 1
            raise
        finally:
            controller.in_flight -= 1

    return middleware


async def _hold(request: web.Request, seconds: float) -> None:
    """Sleep ``seconds``, failing as soon as the client hangs up.

    aiohttp does not cancel handlers when the peer leaves, so without this check a
    gateway that gave up on a slow upstream would not show up in ``disconnects``.
    """
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        if request.transport is None:
            raise ConnectionResetError("the client closed the connection")
        await asyncio.sleep(min(left, 0.01))


async def send_events(
    request: web.Request,
    response: web.StreamResponse,
    events: Sequence[bytes],
    error_event: Callable[[Fault], bytes],
) -> None:
    """Write stream ``events`` in order, applying the request's stream faults."""
    fault = request[FAULT]
    for index, event in enumerate(events):
        if index == fault.drop_after_events:
            _cut_connection(request)
            return
        if index == fault.error_after_events:
            await response.write(error_event(fault))
            return
        if fault.event_delay_s:
            await asyncio.sleep(fault.event_delay_s)
        await response.write(event)


def _cut_connection(request: web.Request) -> None:
    # close() flushes what was written, then ends the TCP connection without the
    # final chunk, so the client sees a truncated body, like a proxy or upstream
    # that died mid-stream. aiohttp ignores the ConnectionError of its own write_eof.
    if request.transport is not None:
        with contextlib.suppress(Exception):
            request.transport.close()


def root_url(server: TestServer) -> str:
    """The server root without a trailing slash, as SDK ``base_url`` values expect."""
    return str(server.make_url("")).rstrip("/")
