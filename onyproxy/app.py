"""The application factory: routes, the shared upstream session, adapters, plugins."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from onyproxy.appkeys import CONFIG, GATEWAY
from onyproxy.config.model import GatewayConfig
from onyproxy.gateway import Gateway
from onyproxy.metrics import Metrics
from onyproxy.middleware import gateway_middleware
from onyproxy.pepper import with_pepper
from onyproxy.pipeline import Pipeline
from onyproxy.privacy.anchor import AnchorJob, anchor_path, open_audit
from onyproxy.providers import build_adapters
from onyproxy.retention import RETENTION_JOB, RetentionJob
from onyproxy.routes import add_routes
from onyproxy.storage import open_store


def create_app(config: GatewayConfig) -> web.Application:
    """A ready-to-run gateway for ``config`` (already validated)."""
    app = web.Application(
        middlewares=[gateway_middleware],
        client_max_size=int(config.server.max_body_mb * 1024 * 1024),
    )
    app[CONFIG] = config
    app.on_response_prepare.append(_security_headers)
    add_routes(app)
    app.cleanup_ctx.append(gateway_context)
    return app


async def gateway_context(app: web.Application) -> AsyncIterator[None]:
    """Open everything with a lifetime, and close it again in reverse order."""
    config = app[CONFIG]
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=_pool_size(config), ttl_dns_cache=300,
                                       enable_cleanup_closed=True),
        auto_decompress=True,
        # The gateway sets its own headers; no cookies travel between clients and providers.
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    gw = Gateway(config=config, session=session,
                 adapters=build_adapters(config.providers, session))
    app[GATEWAY] = gw
    gw.metrics = Metrics(gw)  # before the plugins: they may keep a reference at construction
    try:
        gw.store = await open_store(config.storage.url, **_store_options(config))
        gw.readiness["storage"] = gw.store.ping
        try:
            # After the store opened (so an unreachable database is reported first), before
            # the plugins and the admin API: they read the effective pepper from gw.config.
            gw.config = await with_pepper(config, gw.store)
            await open_audit(gw.store, gw.config)  # before anything is audited
            gw.pipeline = Pipeline([spec.plugin(spec.config, gw) for spec in config.plugins])
            await gw.pipeline.start()
            app[RETENTION_JOB] = job = RetentionJob(gw.store, config.retention)
            job.start()
            anchor = AnchorJob(gw.store, anchor_path(config), gw.metrics.audit_head)
            await anchor.start()
            try:
                yield
            finally:
                await anchor.stop()
                await job.stop()
                await gw.pipeline.stop()
        finally:
            await gw.store.close()
    finally:
        await session.close()


#: Sent with every answer over TLS: browsers keep to https:// for this host for a year.
HSTS = "max-age=31536000"


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    # aiohttp would announce "Python/3.x aiohttp/3.x": exact versions help no one but an
    # attacker matching known vulnerabilities.
    response.headers["Server"] = "onyproxy"
    server = request.config_dict[CONFIG].server
    if server.tls is not None or server.behind_https_proxy:  # clients reach it over HTTPS
        response.headers["Strict-Transport-Security"] = HSTS


def _store_options(config: GatewayConfig) -> dict[str, int]:
    retention = config.retention
    return {"retention_days": retention.usage_events_days,
            "billing_retention_days": retention.billing_years * 366}


def _pool_size(config: GatewayConfig) -> int:
    return max((p.max_connections for p in config.providers.values()), default=100)
