"""The URL map of the gateway."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from onyproxy.admin import add_admin_routes
from onyproxy.dashboard import add_dashboard
from onyproxy.metrics.view import metrics_view
from onyproxy.proxy import handle
from onyproxy.surfaces import anthropic, gemini, openai, responses
from onyproxy.surfaces.models import list_models, retrieve_model
from onyproxy.surfaces.ops import healthz, readyz


def add_routes(app: web.Application) -> None:
    """Client API, operations endpoints, the admin API (``/admin/``), the dashboard (``/ui/``)."""
    app.router.add_post("/v1/chat/completions", partial(handle, op=openai.CHAT))
    app.router.add_post("/v1/embeddings", partial(handle, op=openai.EMBEDDINGS))
    app.router.add_post("/v1/messages", partial(handle, op=anthropic.MESSAGES))
    app.router.add_post("/v1/responses", partial(handle, op=responses.RESPONSES))
    for path in gemini.PATHS:
        app.router.add_post(path, gemini.dispatch)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", retrieve_model)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    add_admin_routes(app)
    add_dashboard(app)
