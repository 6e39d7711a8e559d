"""``GET /v1/models``: the model names this gateway serves, in OpenAI's list shape."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web

from onyproxy.appkeys import GATEWAY
from onyproxy.errors import GatewayError
from onyproxy.proxy import error_response, new_exchange
from onyproxy.surfaces.base import Operation

MODELS = Operation(surface="openai", shape="openai", name="models",
                   parse=lambda body, request: ("", False))
_STARTED = int(time.time())


async def list_models(request: web.Request) -> web.StreamResponse:
    """Every configured model the caller may use (the pipeline runs, so auth applies)."""
    gw = request.app[GATEWAY]
    ex = new_exchange(request, MODELS)
    try:
        await gw.pipeline.request(ex)
        allowed = ex.identity.allowed_models if ex.identity else None
        data = [{"id": name, "object": "model", "created": _STARTED, "owned_by": "onyproxy"}
                for name in gw.config.models if allowed is None or name in allowed]
        ex.status = 200
        return web.Response(body=orjson.dumps({"object": "list", "data": data}),
                            content_type="application/json",
                            headers={"x-request-id": ex.request_id, **ex.response_headers})
    except GatewayError as err:
        return error_response(ex, err)
    finally:
        if gw.metrics is not None:
            gw.metrics.record(ex)  # first: the shielded await below may end in CancelledError
        await asyncio.shield(gw.pipeline.complete(ex))
