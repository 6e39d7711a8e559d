"""The Gemini surface: ``POST /{v1beta,v1}/models/{model}:{method}``.

Methods: ``generateContent``, ``streamGenerateContent``, ``embedContent`` and
``batchEmbedContents``. google-genai calls ``/v1`` by default (``api_version`` selects
``/v1beta``), always streams with ``?alt=sse`` and embeds through ``batchEmbedContents``.
Without ``alt=sse`` the real API streams one JSON array; here that array holds a single, complete
response (the answer is produced in full first), which parses the same for array readers.
SSE events are ``data: <GenerateContentResponse>`` and a blank line, LF-framed: the real API
ends lines with CRLF, and google-genai, like any SSE reader, takes either.

aiohttp's ``{model}`` stops at ``/`` and a model id may hold one (``models/org/name``), so one
route takes the whole tail and splits off the method at the last ``:``. The key arrives as
``x-goog-api-key`` or ``?key=``; the auth plugin reads it, and the query string is never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from onyproxy.error_shapes import render_gemini
from onyproxy.errors import GatewayError, invalid_request
from onyproxy.proxy import handle
from onyproxy.surfaces.base import Operation
from onyproxy.translate.gemini_common import pick

PATHS = ("/v1beta/models/{tail:.+}", "/v1/models/{tail:.+}")


@dataclass(frozen=True, slots=True)
class GeminiOperation(Operation):
    """Gemini streams always end with ``usageMetadata``, so translators on the way must keep
    the usage of whichever provider answers."""

    def wants_usage_chunk(self, body: dict[str, Any]) -> bool:
        return True


def model_of(request: web.Request) -> str:
    model = request.match_info["tail"].rpartition(":")[0]
    if not model:
        raise invalid_request("The URL names no model: expected models/{model}:{method}.",
                              param="model")
    return model


def parse_generate(body: dict[str, Any], request: web.Request) -> tuple[str, bool]:
    """Validate a GenerateContentRequest; return (model, False)."""
    check_contents(body)
    return model_of(request), False


def parse_stream(body: dict[str, Any], request: web.Request) -> tuple[str, bool]:
    """Validate a GenerateContentRequest to stream; return (model, True)."""
    check_contents(body)
    return model_of(request), True


def check_contents(body: dict[str, Any]) -> None:
    contents = pick(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise invalid_request("contents is required and must be a non-empty array.",
                              param="contents")
    for index, content in enumerate(contents):
        if not isinstance(content, dict) or not isinstance(pick(content, "parts"), list):
            raise invalid_request(f"contents[{index}].parts must be an array of parts.",
                                  param=f"contents[{index}].parts")


def parse_embed(body: dict[str, Any], request: web.Request) -> tuple[str, bool]:
    """Validate an EmbedContentRequest; return (model, False)."""
    check_content(body, "content")
    return model_of(request), False


def parse_batch_embed(body: dict[str, Any], request: web.Request) -> tuple[str, bool]:
    """Validate a BatchEmbedContentsRequest; return (model, False)."""
    requests = pick(body, "requests")
    if not isinstance(requests, list) or not requests:
        raise invalid_request("requests is required and must be a non-empty array.",
                              param="requests")
    for index, item in enumerate(requests):
        check_content(item, f"requests[{index}].content")
    return model_of(request), False


def check_content(item: Any, where: str) -> None:
    parts = pick(pick(item, "content"), "parts")
    if not isinstance(parts, list) or not parts:
        raise invalid_request(f"{where} must be a content with a non-empty parts array.",
                              param=where)


GENERATE = GeminiOperation("gemini", "gemini", "chat", parse_generate)
STREAM = GeminiOperation("gemini", "gemini", "chat", parse_stream)
EMBED = GeminiOperation("gemini", "gemini", "embeddings", parse_embed)
BATCH_EMBED = GeminiOperation("gemini", "gemini", "embeddings", parse_batch_embed)
OPERATIONS = {"generateContent": GENERATE, "embedContent": EMBED,
              "batchEmbedContents": BATCH_EMBED}


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Serve ``models/{model}:{method}``."""
    method = request.match_info["tail"].rpartition(":")[2]
    if method == "streamGenerateContent":
        if request.query.get("alt") == "sse":
            return await handle(request, STREAM)
        return as_json_array(await handle(request, GENERATE))
    op = OPERATIONS.get(method)
    if op is None:
        err = GatewayError(404, "invalid_request_error", f"Method not found: {method!r}.")
        return web.Response(body=orjson.dumps(render_gemini(err)), status=404,
                            content_type="application/json")
    return await handle(request, op)


def as_json_array(response: web.StreamResponse) -> web.StreamResponse:
    """The JSON-array framing of ``streamGenerateContent`` without ``alt=sse``."""
    if response.status == 200 and isinstance(response, web.Response) and response.body:
        response.body = b"[" + bytes(response.body) + b"]"
    return response
