"""The ceiling: a minimal aiohttp reverse proxy, as little as a proxy can do.

One shared ``ClientSession`` (keep-alive pool), the body forwarded as bytes, JSON answers read
whole and returned, streams relayed chunk by chunk as they arrive. No parsing, no plugins, no
logging. ``python -m bench.bare --upstream http://127.0.0.1:P [--port P]`` prints
``port=<P>`` once it listens.
"""

from __future__ import annotations

import argparse
import sys

import aiohttp
from aiohttp import web

from bench.loop import run, serve

_HOP = ("content-type", "authorization")
UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def chat(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSION]
    body = await request.read()
    headers = {name: request.headers[name] for name in _HOP if name in request.headers}
    async with session.post(request.app[UPSTREAM] + "/v1/chat/completions", data=body,
                            headers=headers) as upstream:
        content_type = upstream.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            return web.Response(body=await upstream.read(), status=upstream.status,
                                headers={"content-type": content_type})
        resp = web.StreamResponse(status=upstream.status,
                                  headers={"content-type": content_type,
                                           "cache-control": "no-cache"})
        await resp.prepare(request)
        async for piece in upstream.content.iter_any():
            await resp.write(piece)
        await resp.write_eof()
        return resp


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app(upstream: str) -> web.Application:
    async def session_ctx(app: web.Application):
        app[SESSION] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256), cookie_jar=aiohttp.DummyCookieJar())
        yield
        await app[SESSION].close()

    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(session_ctx)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--upstream", required=True, help="base URL of the upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    run(serve, make_app(args.upstream), args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
