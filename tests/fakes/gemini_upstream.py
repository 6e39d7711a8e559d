"""A fake Gemini API (generativelanguage), served by aiohttp over real loopback HTTP.

Usage in a test (``aiohttp_server`` is pytest-aiohttp's fixture)::

    from fakes.gemini_upstream import start_fake_gemini
    from fakes.control import root_url

    async def test_gateway_maps_gemini_quota_errors(aiohttp_server):
        upstream, control = await start_fake_gemini(aiohttp_server)
        control.fail(429, retry_after=7)       # RESOURCE_EXHAUSTED with a RetryInfo detail
        ...point the gateway's gemini provider at root_url(upstream)...
        assert control.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"

Endpoints, each under ``/v1beta``, ``/v1`` and ``/v1alpha``:
``POST /{version}/models/{model}:generateContent``, ``:streamGenerateContent``
(``?alt=sse``: ``data: <GenerateContentResponse>`` events separated by CRLF CRLF, as
the real API frames them; without it: one JSON array written element by element),
``:countTokens``, ``:embedContent`` and ``:batchEmbedContents`` (which
google-genai's ``embed_content`` calls). The key comes in ``x-goog-api-key`` or
``?key=``; none is 403 PERMISSION_DENIED, an unknown one (when
``control.api_keys`` is set) 400 INVALID_ARGUMENT, as with the real API. Errors
have the shape ``{"error": {"code", "message", "status"}}``.

Answers are deterministic (see ``echo_model`` and ``gemini_content``): text
``"echo: <last user text>"``; ``functionCall`` parts for prompts about "weather"
when tools are declared (two for "two cities", always with mode ANY);
``maxOutputTokens`` gives ``MAX_TOKENS``; JSON mode returns JSON fitting the
schema; thinking and ``cachedContent`` add ``thoughtsTokenCount`` and
``cachedContentTokenCount``. Embeddings have 16 dimensions unless
``outputDimensionality`` says otherwise. Faults are scripted through the
controller (see ``control``); an in-stream error is a ``{"error": ...}`` chunk.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from .control import Fault, UpstreamController, control_middleware, send_events
from .echo_model import embedding
from .gemini_content import (
    InvalidArgument,
    merge_chunks,
    pick,
    prompt_tokens,
    response_chunks,
    validate_generate,
)

CONTROLLER: web.AppKey[UpstreamController] = web.AppKey("controller", UpstreamController)
DEFAULT_DIMENSIONS = 16
STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULT_MESSAGES = {
    "RESOURCE_EXHAUSTED": "Resource has been exhausted (e.g. check quota).",
    "INTERNAL": "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    "UNAVAILABLE": "The model is overloaded. Please try again later.",
    "DEADLINE_EXCEEDED": "Deadline expired before operation could complete.",
}
NO_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
BAD_KEY_DETAIL = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
    "metadata": {"service": "generativelanguage.googleapis.com"},
}

Handler = Callable[[web.Request, str, dict[str, Any]], Awaitable[web.StreamResponse]]


def error_body(
    code: int,
    message: str | None = None,
    status: str | None = None,
    retry_after: float | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``{"error": {"code", "message", "status"}}``; a retry delay becomes RetryInfo."""
    status = status or STATUSES.get(code, "UNKNOWN")
    error: dict[str, Any] = {
        "code": code,
        "message": message or DEFAULT_MESSAGES.get(status, status),
        "status": status,
    }
    details = list(details or [])
    if retry_after is not None:  # the real API says when to retry in the body, not a header
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}
        )
    if details:
        error["details"] = details
    return {"error": error}


def error_response(
    code: int,
    message: str | None = None,
    status: str | None = None,
    retry_after: float | None = None,
    details: list[dict[str, Any]] | None = None,
) -> web.Response:
    """An error answer in the Gemini shape."""
    return web.json_response(error_body(code, message, status, retry_after, details), status=code)


def create_app(controller: UpstreamController | None = None) -> web.Application:
    """The fake Gemini app; its controller is ``app[CONTROLLER]``."""
    controller = controller or UpstreamController(error_response)
    app = web.Application(middlewares=[control_middleware(controller)])
    app[CONTROLLER] = controller
    app.router.add_post("/{version:v1beta|v1alpha|v1}/models/{call}", dispatch)
    return app


async def start_fake_gemini(aiohttp_server: AiohttpServer) -> tuple[TestServer, UpstreamController]:
    """Serve a fresh fake on a loopback port; returns the server and its controller."""
    app = create_app()
    server = await aiohttp_server(app)
    return server, app[CONTROLLER]


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Route ``models/{model}:{method}`` to its handler once the key and body are fine."""
    model, _, method = request.match_info["call"].rpartition(":")
    handler = HANDLERS.get(method)
    if not model or handler is None:
        return error_response(404, f"Method not found: models/{request.match_info['call']}")
    refusal = _check_key(request)
    if refusal is not None:
        return refusal
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        return error_response(400, "Invalid JSON payload received.")
    try:
        return await handler(request, model, body)
    except InvalidArgument as exc:
        return error_response(400, str(exc))


def _check_key(request: web.Request) -> web.Response | None:
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        return error_response(403, NO_KEY_MESSAGE)
    allowed = request.app[CONTROLLER].api_keys
    if allowed is not None and key not in allowed:
        return error_response(
            400, "API key not valid. Please pass a valid API key.", details=[BAD_KEY_DETAIL]
        )
    return None


async def generate_content(request: web.Request, model: str, body: dict[str, Any]) -> web.Response:
    """``:generateContent``."""
    chunks = response_chunks(validate_generate(body), model)
    return web.json_response(merge_chunks(chunks))


async def stream_generate_content(
    request: web.Request, model: str, body: dict[str, Any]
) -> web.StreamResponse:
    """``:streamGenerateContent``, as SSE with ``alt=sse`` or else as a JSON array."""
    chunks = [json.dumps(c) for c in response_chunks(validate_generate(body), model)]
    sse = request.query.get("alt") == "sse"
    content_type = "text/event-stream" if sse else "application/json; charset=UTF-8"
    response = web.StreamResponse(headers={"Content-Type": content_type})
    await response.prepare(request)
    if sse:
        events = [f"data: {chunk}\r\n\r\n".encode() for chunk in chunks]
    else:  # "[" first, ",\r\n" between elements, "]" last, like the real API
        events = [f"{',' if i else '['}\r\n{chunk}".encode() for i, chunk in enumerate(chunks)]
        events[-1] += b"]"
    await send_events(request, response, events, lambda fault: _stream_error(fault, sse))
    return response


def _stream_error(fault: Fault, sse: bool) -> bytes:
    error = json.dumps(error_body(fault.status or 503, fault.message, fault.error_type))
    if sse:
        return f"data: {error}\r\n\r\n".encode()
    return f"{',' if fault.error_after_events else '['}\r\n{error}]".encode()


async def count_tokens(request: web.Request, model: str, body: dict[str, Any]) -> web.Response:
    """``:countTokens`` for ``contents`` or a whole ``generateContentRequest``."""
    inner = pick(body, "generateContentRequest") or {"contents": pick(body, "contents")}
    return web.json_response({"totalTokens": prompt_tokens(validate_generate(inner))})


async def embed_content(request: web.Request, model: str, body: dict[str, Any]) -> web.Response:
    """``:embedContent``: one ``embedding``."""
    return web.json_response({"embedding": _embed(body)})


async def batch_embed_contents(
    request: web.Request, model: str, body: dict[str, Any]
) -> web.Response:
    """``:batchEmbedContents``: one embedding per request, in order."""
    requests = pick(body, "requests")
    if not isinstance(requests, list) or not requests:
        raise InvalidArgument("* BatchEmbedContentsRequest.requests: requests is not specified\n")
    return web.json_response({"embeddings": [_embed(item) for item in requests]})


def _embed(item: dict[str, Any]) -> dict[str, list[float]]:
    parts = pick(pick(item, "content"), "parts")
    if not isinstance(parts, list) or not parts:
        raise InvalidArgument("* EmbedContentRequest.content: content is not specified\n")
    text = " ".join(pick(p, "text", "") for p in parts)
    return {"values": embedding(text, pick(item, "outputDimensionality", DEFAULT_DIMENSIONS))}


HANDLERS: dict[str, Handler] = {
    "generateContent": generate_content,
    "streamGenerateContent": stream_generate_content,
    "countTokens": count_tokens,
    "embedContent": embed_content,
    "batchEmbedContents": batch_embed_contents,
}
