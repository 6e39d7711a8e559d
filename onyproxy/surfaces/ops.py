"""Operations endpoints: liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from onyproxy.appkeys import GATEWAY


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Storage reachable and providers configured: 200, else 503 naming what is not ready."""
    gw = request.app[GATEWAY]
    checks = await gw.ready()
    checks["providers"] = bool(gw.adapters)
    ok = all(checks.values())
    return web.json_response({"status": "ready" if ok else "not ready", "checks": checks},
                             status=200 if ok else 503)
