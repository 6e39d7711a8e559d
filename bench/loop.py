"""Running the bench's own servers and clients: uvloop when installed, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web


async def serve(app: web.Application, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM/SIGINT; print ``port=<P>`` once listening."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"port={bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(main, *args) -> None:
    """Run ``main(*args)`` on uvloop when it is installed (as ``onyproxy serve`` does)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(*args))
    else:
        uvloop.run(main(*args))
