"""The one middleware: a request id on every response, and JSON errors for what aiohttp raises.

Unknown paths, wrong methods and oversized bodies never reach a handler; they still answer in
the error shape of the API the path belongs to, never as HTML.
"""

from __future__ import annotations

import re
import uuid

import orjson
from aiohttp import web

from onyproxy.appkeys import REQUEST_ID
from onyproxy.error_shapes import render, surface_of_path
from onyproxy.errors import GatewayError
from onyproxy.logs import log_crash

_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_MESSAGES = {404: "Unknown path.", 405: "Method not allowed for this path.",
             413: "The request body is too large."}


def request_id(request: web.Request) -> str:
    """The client's ``x-request-id`` when it is a sane token, else a new one."""
    given = request.headers.get("x-request-id")
    if given and _VALID_ID.match(given):
        return given
    return f"req_{uuid.uuid4().hex}"


@web.middleware
async def gateway_middleware(request: web.Request, handler) -> web.StreamResponse:
    rid = request[REQUEST_ID] = request_id(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(request, exc.status, _MESSAGES.get(exc.status, exc.reason))
        if exc.status == 405:
            response.headers["allow"] = exc.headers.get("allow", "")
    except Exception as exc:
        log_crash(f"{request.method} {request.path[:256]}", exc)  # the path is the client's
        response = _error(request, 500, "Internal gateway error.")
    if not response.prepared:
        response.headers.setdefault("x-request-id", rid)
    return response


def _error(request: web.Request, status: int, message: str) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "api_error"
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(status)
    err = GatewayError(status, kind, message, code=code)
    return web.Response(body=orjson.dumps(render(surface_of_path(request.path), err)),
                        status=status, content_type="application/json")
