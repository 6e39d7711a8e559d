"""``kill -9`` of a loaded gateway (a real ``onyproxy serve`` process, one worker or two), then
a restart: every request that got a complete answer is in the store, exactly once, and the
dead process's spool is gone. The store half runs on SQLite and on the Mongo test server."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from serve_process import GatewayProcess
from storage.conftest import mongo_url  # noqa: F401  (the session's Mongo test server)

from onyproxy.storage import open_store

PEPPER = "kill-test-pepper-0123456789abcdefghij"
THREADS = 8
KILL_AFTER = 120  # answers received before the kill


def gateway_config(storage_url: str, workers: int) -> dict[str, Any]:
    return {
        "server": {"workers": workers},
        "storage": {"url": storage_url},
        "security": {"key_pepper": PEPPER},
        "providers": {"mock": {"type": "mock"}},
        "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]}},
        "pipeline": [{"name": "routing", "retries": 0, "timeout_s": 5},
                     {"name": "metering", "flush_interval_s": 0.05}],
        "logging": {"access_log": False},
    }


def complete_call(url: str, n: int) -> str | None:
    """One chat call (every third one streamed); its request id when the whole answer came
    back, ``None`` when the connection broke first."""
    stream = n % 3 == 0
    body = {"model": "mock-small", "stream": stream,
            "messages": [{"role": "user", "content": f"request number {n}"}]}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            data = resp.read()
            request_id = resp.headers["x-request-id"]
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return None  # the gateway died before the whole answer came
    finished = data.rstrip().endswith(b"data: [DONE]") if stream else \
        data.endswith(b"}") and json.loads(data).get("object") == "chat.completion"
    return request_id if finished else None


def load_until_killed(gateway: GatewayProcess, pids: list[int]) -> set[str]:
    """Threads call the gateway without pause; after ``KILL_AFTER`` answers every process
    gets SIGKILL while calls are in flight. Returns the ids of the complete answers."""
    answered: set[str] = set()
    lock = threading.Lock()
    killed = threading.Event()
    url = gateway.url("/v1/chat/completions")

    deadline = time.monotonic() + 60  # a gateway that stops answering fails the test, not hangs it

    def worker(offset: int) -> None:
        n = offset
        while not killed.is_set() and time.monotonic() < deadline:
            request_id = complete_call(url, n)
            n += THREADS
            if request_id is None:
                continue
            with lock:
                answered.add(request_id)
                if len(answered) >= KILL_AFTER and not killed.is_set():
                    for pid in pids:  # the supervisor first, so it restarts nobody
                        os.kill(pid, signal.SIGKILL)
                    killed.set()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert killed.is_set(), f"only {len(answered)} complete answers before the deadline"
    return answered


def processes(gateway: GatewayProcess) -> list[int]:
    """The gateway's pid, then its worker processes' (when it supervises some)."""
    pid = gateway.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


async def stored_ids(url: str, expected: set[str], timeout: float = 60) -> list[str]:
    store = await open_store(url)
    try:
        async with asyncio.timeout(timeout):
            while True:
                ids = [e.request_id for e in await store.list_usage_events(limit=100_000)]
                if expected <= set(ids):
                    return ids
                await asyncio.sleep(0.1)
    finally:
        await store.close()


def mongo_database(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/onyproxy_kill_{uuid.uuid4().hex[:8]}"))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("backend", ["sqlite", "mongo"])
async def test_every_answered_request_survives_sigkill_exactly_once(
        tmp_path, request, backend, workers):
    url = f"sqlite:///{tmp_path}/onyproxy.db" if backend == "sqlite" else \
        mongo_database(request.getfixturevalue("mongo_url"))
    config = gateway_config(url, workers)
    first = GatewayProcess(config, tmp_path)
    try:
        await asyncio.to_thread(first.wait_ready)
        pids = processes(first)
        assert len(pids) == (1 if workers == 1 else 1 + workers)
        answered = await asyncio.to_thread(load_until_killed, first, pids)
    finally:
        first.stop()
    spool = tmp_path / ("spool" if backend == "sqlite" else "data/spool")
    assert any(spool.iterdir())  # the dead processes' folders are still there
    second = GatewayProcess(config, tmp_path)
    try:
        await asyncio.to_thread(second.wait_ready)
        ids = await stored_ids(url, answered)
    finally:
        second.stop()
    assert len(ids) == len(set(ids))  # never twice
    assert answered <= set(ids)  # every answer the client got is recorded
    assert list(spool.iterdir()) == []  # replayed, then removed (the second one stopped)
