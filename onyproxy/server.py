"""Run the gateway: one process, or N worker processes sharing the port (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import ssl
import time

from aiohttp import web

from onyproxy.app import create_app
from onyproxy.config.model import GatewayConfig, TLSConfig

log = logging.getLogger("onyproxy.server")


def serve(config: GatewayConfig) -> None:
    """Serve until SIGINT/SIGTERM; with ``server.workers > 1`` supervise that many workers."""
    if config.server.workers == 1:
        run_worker(config, reuse_port=False)
    else:
        supervise(config)


def run_worker(config: GatewayConfig, reuse_port: bool = True) -> None:
    """One event loop serving the whole app; returns on SIGINT/SIGTERM."""
    _install_uvloop()
    asyncio.run(_serve_forever(config, reuse_port))


async def _serve_forever(config: GatewayConfig, reuse_port: bool) -> None:
    runner = web.AppRunner(create_app(config), handler_cancellation=True, access_log=None)
    await runner.setup()
    server = config.server
    site = web.TCPSite(runner, server.host, server.port, reuse_port=reuse_port or None,
                       ssl_context=tls_context(server.tls) if server.tls else None,
                       backlog=1024)
    await site.start()
    scheme = "https" if server.tls else "http"
    log.info("onyproxy listening on %s://%s:%d (pid %d)", scheme, server.host, server.port,
             os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def tls_context(tls: TLSConfig) -> ssl.SSLContext:
    """Server-side TLS with the configured minimum version (TLS 1.3 unless lowered)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = (ssl.TLSVersion.TLSv1_3 if tls.min_version == "1.3"
                               else ssl.TLSVersion.TLSv1_2)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def supervise(config: GatewayConfig) -> None:
    """Start ``workers`` processes on one port and restart any that dies unexpectedly."""
    ctx = multiprocessing.get_context("fork")
    stopping = False

    def start() -> multiprocessing.Process:
        process = ctx.Process(target=run_worker, args=(config,), daemon=False)
        process.start()
        return process

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    workers = [start() for _ in range(config.server.workers)]
    log.info("onyproxy supervising %d workers (pid %d)", len(workers), os.getpid())
    while not stopping:
        time.sleep(0.2)
        for index, process in enumerate(workers):
            if not process.is_alive() and not stopping:
                log.error("worker pid %s exited with %s; restarting", process.pid,
                          process.exitcode)
                time.sleep(0.5)
                workers[index] = start()
    for process in workers:
        process.terminate()
    for process in workers:
        process.join(timeout=10)


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
