"""``GET /v1/models`` and ``GET /v1/models/{id}``: the models the caller may use, in OpenAI's
shapes.

The pipeline runs, so auth applies; the exchange carries ``listing`` (each configured model
with its targets) and the plugins that limit a caller's models or regions narrow it. A model
left with no target is one this caller may not use: it is not listed, and retrieving it is the
same 404 as for a model that does not exist, so a key learns nothing about models it may not
use.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from onyproxy.appkeys import GATEWAY
from onyproxy.errors import GatewayError, model_not_found
from onyproxy.proxy import error_response, new_exchange
from onyproxy.surfaces.base import Operation

MODELS = Operation(surface="openai", shape="openai", name="models",
                   parse=lambda body, request: ("", False))
_STARTED = int(time.time())


def model_object(name: str) -> dict[str, Any]:
    """One entry of OpenAI's ``Model`` schema."""
    return {"id": name, "object": "model", "created": _STARTED, "owned_by": "onyproxy"}


async def list_models(request: web.Request) -> web.StreamResponse:
    """Every configured model the caller may use."""
    return await _serve(request, None)


async def retrieve_model(request: web.Request) -> web.StreamResponse:
    """One model the caller may use, or a 404 in OpenAI's shape."""
    return await _serve(request, request.match_info["model"])


async def _serve(request: web.Request, wanted: str | None) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    ex = new_exchange(request, MODELS)
    models = gw.config.models
    names = list(models) if wanted is None else [wanted] if wanted in models else []
    ex.listing = {name: list(models[name].targets) for name in names}
    try:
        await gw.pipeline.request(ex)
        usable = [name for name, targets in ex.listing.items() if targets]
        if wanted is None:
            answer: dict[str, Any] = {"object": "list",
                                      "data": [model_object(n) for n in usable]}
        elif usable:
            answer = model_object(wanted)
        else:
            raise model_not_found(wanted[:256])
        ex.status = 200
        return web.Response(body=orjson.dumps(answer), content_type="application/json",
                            headers={"x-request-id": ex.request_id, **ex.response_headers})
    except GatewayError as err:
        return error_response(ex, err)
    finally:
        if gw.metrics is not None:
            gw.metrics.record(ex)  # first: the shielded await below may end in CancelledError
        await asyncio.shield(gw.pipeline.complete(ex))
