"""Store fixtures: every contract test runs on SQLite and on a real MongoDB wire server.

The MongoDB half uses ``ONYPROXY_TEST_MONGODB_URL`` when it is set (a real mongod or replica
set), otherwise it starts SecantusDB (``secantusd-py`` from the venv) once per session on a free
loopback port with a temporary storage directory. Every test gets a fresh database with a unique
name, dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError

from onyproxy.storage import Store, open_store

MONGO_URL_ENV = "ONYPROXY_TEST_MONGODB_URL"
STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers_ping(url: str) -> bool:
    client: MongoClient = MongoClient(url, serverSelectionTimeoutMS=500)
    try:
        client.admin.command("ping")
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a MongoDB wire-protocol server for this test session."""
    if os.environ.get(MONGO_URL_ENV):
        yield os.environ[MONGO_URL_ENV]
        return
    exe = Path(sys.executable).parent / "secantusd-py"
    if not exe.exists():
        pytest.fail(f"{exe} not found: install the test extras (pip install secantusdb)")
    workdir = tmp_path_factory.mktemp("secantusdb")
    port = free_port()
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    command = [str(exe), "--host", "127.0.0.1", "--port", str(port),
               "--storage-path", str(workdir / "data")]
    log_path = workdir / "secantusd.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not _answers_ping(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"SecantusDB did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
            yield url
        finally:
            _stop(proc)


@dataclass
class Backend:
    """How one test opens its store: the URL, the options, and what to clean up."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    sqlite_path: Path | None = None


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """One backend per parameter, with a database of its own."""
    if request.param == "sqlite":
        path = tmp_path / "store" / "onyproxy.db"
        return Backend("sqlite", f"sqlite:///{path}", sqlite_path=path)
    url = request.getfixturevalue("mongo_url")
    return Backend("mongo", url, {"database": f"onyproxy_test_{uuid.uuid4().hex[:12]}"})


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    """An open, empty store on the backend; closed (and the Mongo database dropped) after."""
    opened = await open_store(backend.url, **backend.options)
    try:
        yield opened
    finally:
        if backend.name == "mongo":
            await drop_database(backend)
        await opened.close()


async def drop_database(backend: Backend) -> None:
    """Remove the throwaway Mongo database a test used."""
    client: AsyncMongoClient = AsyncMongoClient(backend.url, serverSelectionTimeoutMS=3000)
    try:
        await client.drop_database(backend.options["database"])
    finally:
        await client.close()
