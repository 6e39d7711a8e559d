"""The web dashboard under ``/ui/``: server-rendered pages (aiohttp-jinja2), no build step.

:func:`add_dashboard` mounts it as a sub-application with its own middleware (session, CSRF,
security headers, HTML errors; see :mod:`.middleware`). Each page lives in ``views/`` with a
``register(router)``; templates in ``templates/`` (autoescaped), the stylesheet and one small
script in ``static/``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from onyproxy.dashboard.filters import FILTERS
from onyproxy.dashboard.middleware import dashboard_middleware
from onyproxy.dashboard.views.models import FINDER, FinderCache

PREFIX = "/ui"
HERE = Path(__file__).parent
VIEWS = ["signin", "usage", "keys", "invoices", "models", "privacy", "admin"]


def add_dashboard(app: web.Application) -> None:
    """Mount the dashboard at ``/ui/`` on the gateway application."""
    ui = web.Application(middlewares=[dashboard_middleware])
    ui[FINDER] = FinderCache()
    aiohttp_jinja2.setup(ui, loader=jinja2.FileSystemLoader(HERE / "templates"),
                         autoescape=True, undefined=jinja2.StrictUndefined, filters=FILTERS,
                         default_helpers=False)
    ui.router.add_static("/static/", HERE / "static", name="static")
    for name in VIEWS:
        importlib.import_module(f"onyproxy.dashboard.views.{name}").register(ui.router)
    ui.router.add_route("*", "/{tail:.*}", _not_found)
    app.router.add_get(PREFIX, _to_index)
    app.add_subapp(PREFIX, ui)


async def _to_index(request: web.Request) -> web.Response:
    return web.Response(status=308, headers={"Location": f"{PREFIX}/"})


async def _not_found(request: web.Request) -> web.Response:
    raise web.HTTPNotFound(reason="There is no page at this address.")
