"""One exchange from request to response: parse, plugins, forward, relay, complete.

The flow is the same for every surface; what differs (validation, shapes, error rendering) comes
from the :class:`~onyproxy.surfaces.base.Operation` and the translate registry.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from onyproxy import translate
from onyproxy.access_log import write_access_log
from onyproxy.appkeys import GATEWAY, REQUEST_ID
from onyproxy.client_input import check_depth, check_model, read_raw, user_agent
from onyproxy.error_shapes import render, stream_error_event
from onyproxy.errors import GatewayError, invalid_request, model_not_found
from onyproxy.exchange import Exchange
from onyproxy.forward import forward
from onyproxy.gateway import Gateway
from onyproxy.logs import log_crash
from onyproxy.providers.base import Reply, UpstreamError
from onyproxy.sse import Event, has_usage
from onyproxy.surfaces.base import Operation

JSON = "application/json"


async def handle(request: web.Request, op: Operation) -> web.StreamResponse:
    """Serve one client call of ``op``; ``on_complete`` runs exactly once, whatever happens."""
    gw = request.app[GATEWAY]
    ex = new_exchange(request, op)
    try:
        return await _run(request, gw, ex, op)
    except GatewayError as err:
        return error_response(ex, err)
    except (asyncio.CancelledError, ConnectionResetError):
        ex.flags.add("client_disconnected")
        raise
    except Exception as exc:
        log_crash(f"{op.surface} {op.name}", exc)
        return error_response(ex, GatewayError(500, "api_error", "Internal gateway error.",
                                               code="internal_error"))
    finally:
        ex.ended = time.monotonic()
        await asyncio.shield(_finish(gw, ex))


def new_exchange(request: web.Request, op: Operation) -> Exchange:
    guard = request.app[GATEWAY].failure_guard
    return Exchange(
        request_id=request[REQUEST_ID], surface=op.surface, shape=op.shape, operation=op.name,
        path=request.path, headers=request.headers, query=request.query,
        client_ip=guard.client(request.remote, request.headers),
        user_agent=user_agent(request.headers.get("user-agent")),
    )


async def _run(request: web.Request, gw: Gateway, ex: Exchange,
               op: Operation) -> web.StreamResponse:
    ex.body = await read_body(request)
    model_name, ex.stream = op.parse(ex.body, request)
    check_model(model_name)  # before ex.model is set: the access log never sees it
    ex.model = model_name
    model = gw.config.models.get(ex.model)
    # An unknown model is answered only after the request hooks, so that an unauthenticated
    # caller learns nothing about which model names exist; plugins see empty targets.
    ex.targets = list(model.targets) if model is not None else []
    await gw.pipeline.request(ex)
    if model is None:
        raise model_not_found(ex.model)
    ctx = translate.Context(model=ex.model, operation=ex.operation, request=ex.body,
                            include_usage=op.wants_usage_chunk(ex.body), stream=ex.stream)
    reply = await forward(gw, ex, ctx)
    try:
        if reply.events is not None:
            return await relay_stream(request, gw, ex, reply, ctx)
        return await respond_json(gw, ex, reply, ctx)
    finally:
        await reply.aclose()


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413 saying what is wrong with it."""
    try:
        raw = await read_raw(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[GATEWAY].config.server.max_body_mb
        raise GatewayError(413, "invalid_request_error",
                           f"The request body is larger than the gateway's limit of "
                           f"{limit:g} MB.", code="request_too_large") from None
    if not raw:
        raise invalid_request("The request body is empty; expected a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"The request body is not valid JSON (at character {exc.pos})."
                              ) from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    check_depth(raw, body)
    return body


async def respond_json(gw: Gateway, ex: Exchange, reply: Reply,
                       ctx: translate.Context) -> web.Response:
    assert reply.body is not None
    same = reply.shape == ex.shape
    ex.response = translate.response(reply.body, ex.shape, reply.shape, ctx)
    ex.response_raw = reply.raw if same else None
    ex.status = 200
    await gw.pipeline.response(ex)
    payload = ex.response_raw if ex.response_raw is not None else orjson.dumps(ex.response)
    return web.Response(body=payload, status=200, content_type=JSON,
                        headers=_headers(ex))


async def relay_stream(request: web.Request, gw: Gateway, ex: Exchange, reply: Reply,
                       ctx: translate.Context) -> web.StreamResponse:
    """Relay events as they arrive; never held back, never retried once started.

    Events received together (``Event.more_ready``) are written together, with one send.
    """
    assert reply.events is not None
    events = reply.events if reply.shape == ex.shape else \
        translate.stream(reply.events, ex.shape, reply.shape, ctx)
    strip_usage = ex.shape == "openai" and not ctx.include_usage
    ex.status = 200
    await gw.pipeline.response(ex)
    resp = web.StreamResponse(status=200, headers={
        **_headers(ex), "content-type": "text/event-stream", "cache-control": "no-cache"})
    await resp.prepare(request)
    ready: list[bytes] = []
    try:
        async for event in events:
            if not (strip_usage and _is_usage_chunk(event)):
                if gw.pipeline.has_chunk_hooks:
                    await gw.pipeline.chunk(ex, event)
                if ex.first_token_at is None:
                    ex.first_token_at = time.monotonic()
                ready.append(event.encode())
            if ready and not event.more_ready:
                await resp.write(b"".join(ready))
                ready.clear()
    except (UpstreamError, GatewayError) as exc:
        err = exc if isinstance(exc, GatewayError) else \
            GatewayError(exc.status, "api_error", exc.message, code="upstream_stream_error")
        ex.error = err
        ex.flags.add("stream_error")
        ready.append(stream_error_event(ex.surface, err).encode())
    except ConnectionResetError:
        raise  # the client went away; handle() notes it
    except Exception as exc:
        # A bug after the answer started (a plugin's on_chunk, a translator): the headers are
        # sent, so end the stream with an error event; a new response would hang the client.
        log_crash(f"{ex.surface} {ex.operation} stream", exc)
        ex.error = GatewayError(500, "api_error", "Internal gateway error.",
                                code="internal_error")
        ex.flags.add("stream_error")
        ready.append(stream_error_event(ex.surface, ex.error).encode())
    if ready:
        await resp.write(b"".join(ready))
    await resp.write_eof()
    return resp


def _is_usage_chunk(event: Event) -> bool:
    if not has_usage(event.data):
        return False
    obj = event.json()
    return isinstance(obj, dict) and not obj.get("choices") and bool(obj.get("usage"))


def error_response(ex: Exchange, err: GatewayError) -> web.Response:
    ex.error = err
    ex.status = err.status
    return web.Response(body=orjson.dumps(render(ex.surface, err)), status=err.status,
                        content_type=JSON, headers={**_headers(ex), **err.headers})


def _headers(ex: Exchange) -> dict[str, str]:
    headers = {"x-request-id": ex.request_id, **ex.response_headers}
    if ex.provider:
        headers["x-onyproxy-provider"] = ex.provider
    return headers


async def _finish(gw: Gateway, ex: Exchange) -> None:
    await gw.pipeline.complete(ex)
    if gw.metrics is not None:
        gw.metrics.record(ex)  # after on_complete: metering sets the cost there
    if gw.config.logging.access_log:
        await write_access_log(gw.pipeline, ex)
