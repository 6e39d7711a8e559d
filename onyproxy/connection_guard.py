"""What aiohttp's server does not bound on its own: slow clients, too many connections, and
its own error pages.

aiohttp has no deadline for a request's headers (a "slowloris" client trickling a header byte
now and then keeps its connection for ever) and none for a body that stops arriving. Each
connection here gets one watchdog timer, in the style of aiohttp's own keep-alive timer (moved,
never re-created, while the deadline is ahead): the headers of a request must be complete within
``header_timeout_s`` of its first byte (or of the connection opening), and while a request's body
is being received, ``body_timeout_s`` without a byte ends the request. A worker keeps at most
``max_connections`` open; one more gets a 503 and is closed.

The malformed requests aiohttp answers itself (a bad request line or header) get an error in the
OpenAI shape, as JSON, naming nothing the client sent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from onyproxy.error_shapes import render, surface_of_path
from onyproxy.errors import GatewayError

log = logging.getLogger("onyproxy.server")


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """``server.header_timeout_s``, ``body_timeout_s`` and ``max_connections``."""

    header_timeout_s: float
    body_timeout_s: float
    max_connections: int


def connection_limits(server: Any) -> ConnectionLimits:
    """The limits of a ``server:`` config section."""
    return ConnectionLimits(server.header_timeout_s, server.body_timeout_s,
                            server.max_connections)


def _raw_error(status: int, reason: str, message: str, code: str) -> bytes:
    kind = "invalid_request_error" if status < 500 else "api_error"
    body = orjson.dumps(render("openai", GatewayError(status, kind, message, code=code)))
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


TOO_MANY = _raw_error(503, "Service Unavailable", "The gateway has too many open connections; "
                      "try again shortly.", "too_many_connections")
HEADERS_LATE = _raw_error(408, "Request Timeout", "The request's headers did not arrive in time.",
                          "header_timeout")


class Connections:
    """The protocol factory of one listening socket: counts connections, makes handlers."""

    def __init__(self, server: web.Server, limits: ConnectionLimits) -> None:
        self.server, self.limits, self.open = server, limits, 0

    def __call__(self) -> GuardedHandler:
        # What web.Server.__call__ does, with the guarded handler class.
        return GuardedHandler(self.server, self, loop=asyncio.get_running_loop(),
                              **self.server._kwargs)


class GuardedHandler(RequestHandler):
    """aiohttp's request handler with the watchdog and JSON errors (see the module docs)."""

    __slots__ = (
        "_connections",
        "_counted",
        "_headers_since",
        "_last_data",
        "_requests_seen",
        "_watch",
    )

    def __init__(self, manager: web.Server, connections: Connections, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._connections = connections
        self._counted = False
        self._watch: asyncio.TimerHandle | None = None
        self._headers_since: float | None = None
        self._requests_seen = 0
        self._last_data = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        connections = self._connections
        if connections.open >= connections.limits.max_connections:
            transport.write(TOO_MANY)  # type: ignore[attr-defined]
            transport.close()
            return
        connections.open += 1
        self._counted = True
        super().connection_made(transport)
        self._waiting_for_headers(self._loop.time())

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._counted:
            return  # refused in connection_made: aiohttp never saw it
        self._counted = False
        self._connections.open -= 1
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        now = self._last_data = self._loop.time()
        if self._headers_since is None and not self._request_in_progress \
                and not self._messages:
            self._waiting_for_headers(now)  # the first byte of the next request
        super().data_received(data)
        if self._headers_since is not None and self._request_count != self._requests_seen:
            self._headers_since = None  # complete: from now on the body is watched
            self._schedule(now + self._connections.limits.body_timeout_s)

    def _waiting_for_headers(self, now: float) -> None:
        self._headers_since = now
        self._requests_seen = self._request_count
        self._schedule(now + self._connections.limits.header_timeout_s)

    def _schedule(self, when: float) -> None:
        if self._watch is None:
            self._watch = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._watch = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        now, limits = self._loop.time(), self._connections.limits
        if self._headers_since is not None and self._request_count == self._requests_seen:
            deadline = self._headers_since + limits.header_timeout_s
            if now >= deadline:
                transport.write(HEADERS_LATE)
                transport.close()
            else:
                self._schedule(deadline)
            return
        self._headers_since = None
        if not self._receiving_body():
            if self._request_in_progress:
                self._schedule(now + limits.body_timeout_s)
            return  # idle between requests: aiohttp's keep-alive timer closes it
        deadline = self._last_data + limits.body_timeout_s
        if now < deadline:
            self._schedule(deadline)
            return
        log.info("closed a connection from %s: its request body stopped arriving for %gs",
                 self._peer(), limits.body_timeout_s)
        transport.close()  # handler_cancellation: the request ends with the connection

    def _receiving_body(self) -> bool:
        request = self._current_request
        if request is None or request.content.is_eof():
            return False
        if self._reading_paused or self._buffer_paused:
            self._last_data = self._loop.time()  # held back by us, not by the client
        return True

    def _peer(self) -> str:
        transport = self.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        return str(peer[0]) if peer else "unknown"

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's own errors (malformed requests, handler crashes) as JSON, echoing nothing
        of the request."""
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
            err = GatewayError(status, "api_error", "Internal gateway error.",
                               code="internal_error")
        else:
            log.debug("malformed request from %s: %s", self._peer(), type(exc).__name__)
            err = GatewayError(status, "invalid_request_error",
                               "The request is not valid HTTP (a malformed request line or "
                               "header).", code="bad_http_request")
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; no error response can follow")
        path = request.path if isinstance(request.path, str) else "/"
        response = web.Response(status=status, content_type="application/json",
                                body=orjson.dumps(render(surface_of_path(path), err)))
        response.force_close()
        return response


class GuardedSite(web.TCPSite):
    """A TCP site whose connections are made by :class:`Connections`."""

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int,
                 limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._limits = limits

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers with the runner; TCPSite.start, guarded:
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            Connections(server, self._limits), self._host, self._port,
            ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
