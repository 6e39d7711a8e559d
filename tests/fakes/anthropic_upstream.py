"""A fake Anthropic Messages API, served by aiohttp over real loopback HTTP.

Usage in a test (``aiohttp_server`` is pytest-aiohttp's fixture)::

    from fakes.anthropic_upstream import start_fake_anthropic
    from fakes.control import Fault, root_url

    async def test_gateway_retries_overloaded_anthropic(aiohttp_server):
        upstream, control = await start_fake_anthropic(aiohttp_server)
        control.fail(529)                      # the next request gets overloaded_error
        ...point the gateway's anthropic provider at root_url(upstream)...
        assert control.last.body["max_tokens"] == 64
        assert control.last.headers["anthropic-version"]

Endpoints: ``POST /v1/messages`` (JSON or, with ``"stream": true``, SSE) and
``POST /v1/messages/count_tokens``. Like the real API every call needs a key
(``x-api-key``, or ``Authorization: Bearer`` which anthropic SDK 2.x sends for
``api_key``) and an ``anthropic-version`` header; errors use the real shape
``{"type": "error", "error": {"type", "message"}, "request_id"}``. Set
``control.api_keys`` to refuse other keys (401 "invalid x-api-key").

Answers are deterministic (see ``echo_model``): ``"echo: <last user text>"``,
``max_tokens`` and ``stop_sequences`` honoured with the matching ``stop_reason``;
with ``tools`` and a prompt about "weather" (or a forcing ``tool_choice``) the
answer is ``tool_use`` blocks, two parallel ones for "two cities"; with
``thinking`` on, a signed ``thinking`` block comes first; structured outputs
(``output_config.format``) give JSON fitting the schema; with a ``web_search_*``
server tool, one search (two when the prompt says "twice") comes as ``server_tool_use`` and
``web_search_tool_result`` blocks, counted in ``usage.server_tool_use``. Prompt caching
is simulated: the prefix up to the last ``cache_control`` marker is reported as
``cache_creation_input_tokens`` the first time and ``cache_read_input_tokens``
after. Scripted faults (see ``control``): HTTP errors (529 ``overloaded_error``,
429 with ``retry-after`` ...), slow answers, delays between events, a connection
cut after K events, and the in-stream ``event: error`` the real API sends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from .anthropic_messages import (
    InvalidRequest,
    build_message,
    input_usage,
    new_id,
    validate_request,
)
from .control import Fault, UpstreamController, control_middleware, send_events
from .echo_model import tokens

CONTROLLER: web.AppKey[UpstreamController] = web.AppKey("controller", UpstreamController)
PROMPT_CACHE: web.AppKey[set[str]] = web.AppKey("prompt_cache", set)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
DEFAULT_MESSAGES = {
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
}


def error_response(
    status: int,
    message: str | None = None,
    error_type: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    """An error answer in the Anthropic shape, with ``request-id`` like the real API."""
    kind = error_type or ERROR_TYPES.get(status, "api_error")
    request_id = new_id("req_")
    body = {
        "type": "error",
        "error": {"type": kind, "message": message or DEFAULT_MESSAGES.get(kind, kind)},
        "request_id": request_id,
    }
    headers = {"request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    return web.json_response(body, status=status, headers=headers)


def create_app(controller: UpstreamController | None = None) -> web.Application:
    """The fake Anthropic app; its controller is ``app[CONTROLLER]``."""
    controller = controller or UpstreamController(error_response)
    app = web.Application(middlewares=[control_middleware(controller)])
    app[CONTROLLER] = controller
    app[PROMPT_CACHE] = set()
    app.router.add_post("/v1/messages", create_message)
    app.router.add_post("/v1/messages/count_tokens", count_message_tokens)
    return app


async def start_fake_anthropic(
    aiohttp_server: AiohttpServer,
) -> tuple[TestServer, UpstreamController]:
    """Serve a fresh fake on a loopback port; returns the server and its controller."""
    app = create_app()
    server = await aiohttp_server(app)
    return server, app[CONTROLLER]


async def create_message(request: web.Request) -> web.StreamResponse:
    """``POST /v1/messages``."""
    body, refusal = await _accepted_body(request, needs_max_tokens=True)
    if refusal is not None:
        return refusal
    message = build_message(body, request.app[PROMPT_CACHE])
    if body.get("stream"):
        return await _stream_message(request, message)
    return web.json_response(message, headers={"request-id": new_id("req_")})


async def count_message_tokens(request: web.Request) -> web.StreamResponse:
    """``POST /v1/messages/count_tokens``: input tokens only, nothing is cached."""
    body, refusal = await _accepted_body(request, needs_max_tokens=False)
    if refusal is not None:
        return refusal
    usage = input_usage(body, set())
    return web.json_response({"input_tokens": usage["input_tokens"]})


async def _accepted_body(
    request: web.Request, *, needs_max_tokens: bool
) -> tuple[dict[str, Any], web.Response | None]:
    """The validated JSON body, or the error answer the real API would give."""
    refusal = _check_headers(request)
    if refusal is not None:
        return {}, refusal
    try:
        body = json.loads(await request.read())
        return validate_request(body, needs_max_tokens=needs_max_tokens), None
    except ValueError as exc:  # InvalidRequest, or a body that is not JSON
        message = str(exc) if isinstance(exc, InvalidRequest) else "invalid JSON body"
        return {}, error_response(400, message)


def _check_headers(request: web.Request) -> web.Response | None:
    controller = request.app[CONTROLLER]
    key = request.headers.get("x-api-key") or _bearer(request.headers.get("authorization"))
    if not key:
        return error_response(401, "x-api-key header is required")
    if controller.api_keys is not None and key not in controller.api_keys:
        return error_response(401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return error_response(400, "anthropic-version: header is required")
    return None


def _bearer(value: str | None) -> str | None:
    scheme, _, token = (value or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _stream_message(request: web.Request, message: dict[str, Any]) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "request-id": new_id("req_"),
        }
    )
    await response.prepare(request)
    events = [sse_event(name, data) for name, data in stream_events(message)]
    await send_events(request, response, events, _stream_error)
    return response


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    """One SSE event as the real API frames it: ``event:`` and ``data:`` lines, LF LF."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _stream_error(fault: Fault) -> bytes:
    status = fault.status or 529
    kind = fault.error_type or ERROR_TYPES.get(status, "api_error")
    error = {"type": kind, "message": fault.message or DEFAULT_MESSAGES.get(kind, kind)}
    return sse_event("error", {"type": "error", "error": error})


def stream_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) sequence the real API streams for a finished ``message``."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 1}
    if "server_tool_use" in usage:  # counted as the tools run: zero when the message starts
        start["usage"]["server_tool_use"] = dict.fromkeys(usage["server_tool_use"], 0)
    events = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        block_events = list(_block_events(index, block))
        if index == 0:  # the real API pings right after the first block opens
            block_events.insert(1, ("ping", {"type": "ping"}))
        events += block_events
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    # Like the real API, message_delta repeats the (cumulative) input and cache counts.
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _block_events(index: int, block: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    opened, deltas = _opened_block(block)
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": opened},
    )
    for delta in deltas:
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": index}


def _opened_block(block: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A block as content_block_start shows it (empty), and the deltas that fill it."""
    if block["type"] == "text":
        deltas = [{"type": "text_delta", "text": piece} for piece in tokens(block["text"])]
        return {"type": "text", "text": ""}, deltas
    if block["type"] == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": t} for t in tokens(block["thinking"])]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
        return {"type": "thinking", "thinking": "", "signature": ""}, deltas
    if block["type"] == "web_search_tool_result":
        return block, []  # results arrive whole in content_block_start
    # tool_use and server_tool_use: the input arrives as JSON text in pieces, the first empty.
    arguments = json.dumps(block["input"])
    third = max(1, len(arguments) // 3)
    pieces = ["", *(arguments[i : i + third] for i in range(0, len(arguments), third))]
    deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
    return {**block, "input": {}}, deltas
