"""The database goes away during 200 requests and comes back: every request is answered
meanwhile, the records wait in the spool (its depth and the flush errors show in /metrics),
and afterwards the store holds each of the 200 events exactly once. On SQLite the store
fails at its interface; on MongoDB the SecantusDB server itself is stopped and restarted."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError
from storage.conftest import free_port

from onyproxy.appkeys import GATEWAY
from onyproxy.storage import StorageError

REQUESTS = 200
CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "count me once"}]}


def config(storage_url: str | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "pipeline": [{"name": "routing", "retries": 0, "timeout_s": 5},
                     {"name": "metering", "flush_interval_s": 0.05, "retry_max_s": 0.3}]}
    if storage_url:
        raw["storage"] = {"url": storage_url}
        raw["security"] = {"key_pepper": "outage-test-pepper-0123456789abcdef"}
    return raw


class Outage:
    """The gateway's store, failing usage writes while ``down`` as an unreachable database
    does (everything else passes through)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def insert_usage_events(self, events: Any) -> int:
        if self.down:
            raise StorageError("database unreachable (test outage)")
        return await self.store.insert_usage_events(events)


async def send_all(server: Any, count: int) -> list[str]:
    """``count`` chat calls, 20 at a time; the request ids of the answers (all must be 200)."""
    ids: list[str] = []
    async with aiohttp.ClientSession() as session:
        async def one() -> str:
            async with session.post(server.make_url("/v1/chat/completions"), json=CHAT) as r:
                assert r.status == 200, await r.text()
                return r.headers["x-request-id"]
        for _ in range(count // 20):
            ids += await asyncio.gather(*(one() for _ in range(20)))
    return ids


async def wait_metric(server: Any, name: str, value: float | None = None,
                      timeout: float = 30.0) -> float:
    """The metric once it is ``value`` (or, without one, above zero)."""
    async with asyncio.timeout(timeout):
        while True:
            found = await metric(server, name)
            if found == value or (value is None and found > 0):
                return found
            await asyncio.sleep(0.05)


async def metric(server: Any, name: str) -> float:
    async with aiohttp.ClientSession() as session, \
            session.get(server.make_url("/metrics")) as resp:
        text = await resp.text()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def stored_ids(store: Any, expected: int, timeout: float = 60.0) -> list[str]:
    async with asyncio.timeout(timeout):
        while True:
            try:
                events = await store.list_usage_events(limit=10 * expected)
            except StorageError:
                events = []
            if len(events) >= expected:
                return [e.request_id for e in events]
            await asyncio.sleep(0.05)


async def test_sqlite_outage_during_200_requests_loses_and_doubles_nothing(gateway, tmp_path):
    server = await gateway(config())
    gw = server.app[GATEWAY]
    outage = gw.store = Outage(gw.store)
    outage.down = True
    ids = await send_all(server, REQUESTS)
    await wait_metric(server, "onyproxy_spool_flush_errors_total")
    await wait_metric(server, "onyproxy_spool_depth", REQUESTS)
    assert await outage.store.list_usage_events() == []
    spooled = b"".join(p.read_bytes() for p in (tmp_path / "spool").rglob("seg-*"))
    assert spooled.count(b"\n") == REQUESTS and b"count me once" not in spooled  # no content
    outage.down = False
    stored = await stored_ids(outage.store, REQUESTS)
    assert sorted(stored) == sorted(ids) and len(set(stored)) == REQUESTS
    await wait_metric(server, "onyproxy_spool_depth", 0)


class SecantusServer:
    """A SecantusDB process of this test's own, on a fixed port and folder, so it can be
    stopped and started again with its data."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}/onyproxy_outage?directConnection=true"
        self.command = [str(Path(sys.executable).parent / "secantusd-py"), "--host",
                        "127.0.0.1", "--port", str(self.port), "--storage-path",
                        str(workdir / "data")]
        self.log = workdir / "secantusd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        client: MongoClient = MongoClient(self.url, serverSelectionTimeoutMS=500)
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise RuntimeError(self.log.read_text()[-2000:]) from None
                    time.sleep(0.1)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.mark.slow
async def test_mongo_server_stopped_during_200_requests_loses_and_doubles_nothing(
        gateway, tmp_path):
    mongo = SecantusServer(tmp_path)
    await asyncio.to_thread(mongo.start)
    try:
        server = await gateway(config(mongo.url))
        gw = server.app[GATEWAY]
        first = await send_all(server, 40)
        await stored_ids(gw.store, 40)
        await asyncio.to_thread(mongo.stop)
        ids = first + await send_all(server, REQUESTS - 40)
        await wait_metric(server, "onyproxy_spool_flush_errors_total")
        await wait_metric(server, "onyproxy_spool_depth", REQUESTS - 40)
        await asyncio.to_thread(mongo.start)
        stored = await stored_ids(gw.store, REQUESTS)
        assert sorted(stored) == sorted(ids) and len(set(stored)) == REQUESTS
    finally:
        await asyncio.to_thread(mongo.stop)
