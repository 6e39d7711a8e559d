"""``GET /metrics``: the Prometheus exposition of this gateway (all workers together).

Not behind the gateway's API keys: Prometheus scrapes it. It reveals traffic volumes, model
and provider names, never content or identities; still, keep it off the public internet: bind
the gateway to an internal address, firewall the path at the load balancer, or set
``metrics.token`` so that scrapes need ``Authorization: Bearer <token>`` (Prometheus:
``authorization: {credentials: ...}`` in the scrape config).
"""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from onyproxy.appkeys import GATEWAY


async def metrics_view(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    token = gw.config.metrics.token
    if token and not _authorized(request.headers.get("authorization", ""), token):
        return web.Response(status=401, text="metrics: a bearer token is required\n",
                            headers={"www-authenticate": 'Bearer realm="metrics"'})
    metrics = gw.metrics
    metrics.refresh()
    # Prometheus asks for OpenMetrics or the text format in Accept; prometheus-client
    # picks the encoder and the matching content type.
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    # In multiprocess mode this reads every worker's files: small and local, a few ms.
    body = encode(metrics.exposed)
    return web.Response(body=body, headers={"content-type": content_type})


def _authorized(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    # Constant-time, so response timing does not reveal how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())
