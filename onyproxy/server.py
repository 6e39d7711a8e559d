"""Run the gateway: one process, or N worker processes sharing the port (SO_REUSEPORT).

SIGTERM and SIGINT drain (see :mod:`onyproxy.drain`); SIGHUP is logged and ignored, by the
master and the workers alike (it is no reason to stop serving). Workers drain and exit when
their master dies (see :mod:`onyproxy.parent_watch`).
"""

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
from onyproxy.appkeys import GATEWAY
from onyproxy.config.model import GatewayConfig, TLSConfig
from onyproxy.connection_guard import GuardedSite, connection_limits
from onyproxy.drain import CUT_GRACE_S, Drain
from onyproxy.errors import StartupError
from onyproxy.metrics import multiprocess
from onyproxy.parent_watch import ask_for_death_signal, watch_parent
from onyproxy.storage import StorageError

log = logging.getLogger("onyproxy.server")


# A worker that cannot start (database unreachable, port taken) exits with this status, and the
# supervisor stops rather than restarting it in a loop.
EXIT_STARTUP_FAILED = 3


def serve(config: GatewayConfig) -> None:
    """Serve until SIGINT/SIGTERM; with ``server.workers > 1`` supervise that many workers.

    Raises :class:`StartupError` when the gateway cannot start.
    """
    if config.server.workers == 1:
        _install_uvloop()
        asyncio.run(_serve_forever(config, reuse_port=False))
    else:
        supervise(config)


def run_worker(config: GatewayConfig, master_pid: int) -> None:
    """One worker process: the whole app on a shared port, until SIGINT/SIGTERM or until the
    master ``master_pid`` is gone."""
    ask_for_death_signal(signal.SIGTERM)
    _install_uvloop()
    try:
        asyncio.run(_serve_forever(config, reuse_port=True, master_pid=master_pid))
    except StartupError as exc:
        log.error("worker pid %d cannot start: %s", os.getpid(), exc)
        os._exit(EXIT_STARTUP_FAILED)


async def _serve_forever(config: GatewayConfig, reuse_port: bool,
                         master_pid: int | None = None) -> None:
    server = config.server
    app = create_app(config)
    drain = Drain()
    drain.install(app)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                           keepalive_timeout=server.keepalive_timeout_s,
                           shutdown_timeout=server.drain_s + CUT_GRACE_S)
    try:
        await runner.setup()
        site = GuardedSite(runner, server.host, server.port, connection_limits(server),
                           reuse_port=reuse_port or None,
                           ssl_context=tls_context(server.tls) if server.tls else None,
                           backlog=1024)
        await site.start()
    except (StorageError, OSError, ssl.SSLError, StartupError) as exc:
        await runner.cleanup()
        raise StartupError(_startup_problem(config, exc)) from None
    scheme = "https" if server.tls else "http"
    log.info("onyproxy listening on %s://%s:%d (pid %d)", scheme, server.host, server.port,
             os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _ignore_hangup)
    watcher = asyncio.create_task(watch_parent(master_pid, stop.set)) if master_pid else None
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        await _drain(drain, runner, server.drain_s)


async def _refuse(*_: object) -> bool:
    return False


async def _drain(drain: Drain, runner: web.AppRunner, drain_s: float) -> None:
    # /readyz answers 503 from now on (on connections still open), so a load balancer that
    # probes before the listening socket closes stops sending.
    runner.app[GATEWAY].readiness["accepting"] = _refuse
    log.info("pid %d draining: no new connections, %d requests in flight, waiting up to "
             "%gs (server.drain_s)", os.getpid(), drain.in_flight, drain_s)
    cut = await drain.shutdown(runner, drain_s)
    if cut.requests:
        log.warning("pid %d cut %d requests (%d of them streams) still running after "
                    "server.drain_s=%gs", os.getpid(), cut.requests, cut.streams, drain_s)


def _ignore_hangup(*_: object) -> None:
    log.warning("pid %d: SIGHUP ignored (the configuration is not reloaded; restart to apply "
                "changes)", os.getpid())


def _startup_problem(config: GatewayConfig, exc: Exception) -> str:
    if isinstance(exc, StartupError):  # raised by a part that says itself what failed
        return str(exc)
    if isinstance(exc, StorageError):
        return f"storage ({_redacted(config.storage.url)}): {exc}"
    if isinstance(exc, ssl.SSLError | FileNotFoundError) and config.server.tls:
        return f"server.tls: cannot load the certificate or key ({exc})"
    return f"cannot listen on {config.server.host}:{config.server.port} ({exc.strerror or exc})"


def _redacted(url: str) -> str:
    """A storage URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


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
    # Before the first fork: workers inherit the directory their metric files go to.
    metrics_dir, created_metrics_dir = multiprocess.prepare()

    def start() -> multiprocessing.Process:
        process = ctx.Process(target=run_worker, args=(config, os.getpid()), daemon=False)
        process.start()
        return process

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, _ignore_hangup)
    workers = [start() for _ in range(config.server.workers)]
    log.info("onyproxy supervising %d workers (pid %d)", len(workers), os.getpid())
    failed = False
    while not stopping:
        time.sleep(0.2)
        for index, process in enumerate(workers):
            if process.exitcode == EXIT_STARTUP_FAILED:
                stopping = failed = True
            if not process.is_alive() and not stopping:
                log.error("worker pid %s exited with %s; restarting", process.pid,
                          process.exitcode)
                multiprocess.mark_dead(process.pid)
                time.sleep(0.5)
                workers[index] = start()
    for process in workers:
        process.terminate()
    # A worker drains for up to drain_s, then gives what it cut time to finish its books.
    deadline = time.monotonic() + config.server.drain_s + CUT_GRACE_S + 5
    for process in workers:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.error("worker pid %s did not stop in time; killing it", process.pid)
            process.kill()
            process.join()
        multiprocess.mark_dead(process.pid)
    if created_metrics_dir:
        multiprocess.remove(metrics_dir)
    if failed:
        raise StartupError("a worker could not start (see the log above)")


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
