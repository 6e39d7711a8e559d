"""Opening stores: URL schemes, SQLite files and migrations, MongoDB indexes and failures."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from onyproxy.storage import AuditEntry, StorageError, open_store
from onyproxy.storage.mongo import MongoStore
from onyproxy.storage.sqlite import SQLiteStore
from onyproxy.storage.sqlite_schema import MIGRATIONS, migrate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unknown_scheme_is_a_storage_error_naming_the_scheme() -> None:
    with pytest.raises(StorageError, match="'postgres'"):
        await open_store("postgres://db/onyproxy")


# SQLite ------------------------------------------------------------------------------------
async def test_sqlite_creates_parent_dirs_schema_wal_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "onyproxy.db"
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    assert path.exists()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (len(MIGRATIONS),)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"accounts", "api_keys", "usage_events", "billing_records", "audit_log"} <= tables
    finally:
        conn.close()


async def test_sqlite_connection_enforces_foreign_keys(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/x.db")
    assert isinstance(store, SQLiteStore)
    try:
        on = await store._run(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0])
        assert on == 1
    finally:
        await store.close()


async def test_sqlite_work_runs_on_its_own_thread_not_the_event_loop(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/x.db")
    assert isinstance(store, SQLiteStore)
    try:
        names = await asyncio.gather(
            *(store._run(lambda _: threading.current_thread().name) for _ in range(5)))
        assert len(set(names)) == 1 and names[0].startswith("onyproxy-sqlite")
        assert names[0] != threading.current_thread().name
    finally:
        await store.close()


async def test_sqlite_relative_url_is_relative_to_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///./data/onyproxy.db")
    await store.close()
    assert (tmp_path / "data" / "onyproxy.db").exists()


async def test_sqlite_memory_store_works() -> None:
    store = await open_store("sqlite:///:memory:")
    try:
        assert await store.ping()
    finally:
        await store.close()


async def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    store = await open_store(url)
    await store.append_audit(AuditEntry("test", "first.open"))
    await store.close()
    store = await open_store(url)
    try:
        assert [e.action for e in await store.list_audit()] == ["first.open"]
    finally:
        await store.close()


async def test_an_objection_from_before_migration_5_reads_back_without_an_event(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:4])
    conn.execute("INSERT INTO objections (id, account_id, reason, actor, created_at) "
                 "VALUES ('obj_1', 'acc_1', 'wrong block', 'cli:ops', "
                 "'2025-03-01T12:00:00.000+00:00')")
    conn.close()
    store = await open_store(f"sqlite:///{path}")
    try:
        old = await store.get_objection("obj_1")
        assert old is not None and old.reason == "wrong block"
        assert (old.event_id, old.key_id, old.decided_at) == (None, None, None)
    finally:
        await store.close()


async def test_keys_from_before_migration_6_are_not_owner_keys(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:5])
    conn.execute("INSERT INTO accounts (id, email, first_name, created_at, updated_at) "
                 "VALUES ('acc_1', 'a@example.com', 'A', '2025-03-01T12:00:00.000+00:00', "
                 "'2025-03-01T12:00:00.000+00:00')")
    conn.execute("INSERT INTO api_keys (id, account_id, name, prefix, hash, created_at) "
                 "VALUES ('key_1', 'acc_1', 'old', 'ony-AbCdEfGh', ?, "
                 "'2025-03-01T12:00:00.000+00:00')", ("h" * 64,))
    conn.close()
    store = await open_store(f"sqlite:///{path}")
    try:
        old = await store.get_key("key_1")
        assert old is not None and old.name == "old"
        assert (old.owner, old.created_by) == (False, None)
    finally:
        await store.close()


async def test_corrupt_sqlite_file_is_a_clear_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database, just some bytes " * 200)
    with pytest.raises(StorageError) as caught:
        await open_store(f"sqlite:///{path}")
    assert str(path) in str(caught.value)
    assert "not a database" in str(caught.value)


async def test_unopenable_sqlite_path_is_a_clear_storage_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StorageError, match=r"dir\.db"):
        await open_store(f"sqlite:///{tmp_path}/dir.db")


async def test_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (?)", (len(MIGRATIONS) + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="newer"):
        await open_store(f"sqlite:///{path}")


def open_after(barrier: Any, url: str, results: Any) -> None:
    barrier.wait()  # forked workers reach the file at the same moment, as after a fork
    try:
        store = asyncio.run(open_store(url))
    except StorageError as exc:
        results.put(f"error: {exc}")
        return
    asyncio.run(store.close())
    results.put("ok")


@pytest.mark.slow
def test_processes_opening_one_new_sqlite_file_at_once_all_start(tmp_path: Path) -> None:
    """server.workers > 1 on a fresh install: every worker opens (and would migrate) the new
    file at the same moment. SQLite refuses some of them "database is locked" at once instead
    of waiting, and the store must try again rather than fail the worker's start (before the
    fix, three runs of this test out of three had a round where one refused to start)."""
    ctx = multiprocessing.get_context("fork")
    for round_ in range(30):
        url = f"sqlite:///{tmp_path}/fresh{round_}.db"
        barrier, results = ctx.Barrier(6), ctx.Queue()
        children = [ctx.Process(target=open_after, args=(barrier, url, results))
                    for _ in range(6)]
        for child in children:
            child.start()
        outcomes = [results.get(timeout=60) for _ in children]
        for child in children:
            child.join(timeout=60)
        assert outcomes == ["ok"] * 6
        conn = sqlite3.connect(tmp_path / f"fresh{round_}.db")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (len(MIGRATIONS),)]
        conn.close()


# MongoDB -----------------------------------------------------------------------------------
# Failing to connect runs in a child process: PyMongo 4.20 leaks the socket of a connection
# attempt that close() cancels (PYTHON-5867, mongo-python-driver#2858), and its ResourceWarning
# would land on whichever test the garbage collector happens to run in.
OPEN_AND_REPORT = """
import asyncio, json, sys, time
from onyproxy.storage import StorageError, open_store

async def main() -> None:
    started = time.monotonic()
    try:
        await open_store(sys.argv[1], server_selection_timeout_ms=500)
    except StorageError as exc:
        print(json.dumps({"error": str(exc), "seconds": time.monotonic() - started}))

asyncio.run(main())
"""


def open_in_child(url: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", OPEN_AND_REPORT, url], capture_output=True,
                          text=True, timeout=30, check=True)
    return json.loads(done.stdout)


async def test_unreachable_mongo_is_a_quick_storage_error_naming_the_host() -> None:
    port = free_port()
    report = open_in_child(f"mongodb://127.0.0.1:{port}/?directConnection=true")
    assert f"cannot reach MongoDB at 127.0.0.1:{port}" in str(report["error"])
    assert float(report["seconds"]) < 3  # type: ignore[arg-type]


async def test_mongo_messages_never_show_credentials() -> None:
    port = free_port()
    report = open_in_child(f"mongodb://ops:s3cret@127.0.0.1:{port}/?directConnection=true")
    assert "127.0.0.1" in str(report["error"]) and "s3cret" not in str(report["error"])


async def test_invalid_mongo_url_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="invalid MongoDB URL"):
        await open_store("mongodb://127.0.0.1:notaport/")


@pytest.mark.slow
async def test_mongo_indexes_unique_and_ttl(mongo_url: str) -> None:
    name = f"onyproxy_test_{uuid.uuid4().hex[:12]}"
    store = await open_store(mongo_url, database=name, retention_days=90)
    assert isinstance(store, MongoStore)
    try:
        indexes = {}
        for collection in ("accounts", "api_keys", "usage_events", "billing_records"):
            async for ix in await store.db[collection].list_indexes():
                indexes[(collection, ix["name"])] = ix
        assert indexes[("accounts", "email_unique")]["unique"] is True
        assert indexes[("api_keys", "hash_unique")]["unique"] is True
        assert indexes[("usage_events", "request_id_unique")]["unique"] is True
        assert indexes[("usage_events", "created_at_ttl")]["expireAfterSeconds"] == 90 * 86400
        assert indexes[("billing_records", "updated_at_ttl")]["expireAfterSeconds"] == (
            3650 * 86400)
    finally:
        await store.db.client.drop_database(name)
        await store.close()


@pytest.mark.slow
async def test_changed_retention_updates_the_ttl_index_on_reopen(mongo_url: str) -> None:
    name = f"onyproxy_test_{uuid.uuid4().hex[:12]}"
    await (await open_store(mongo_url, database=name, retention_days=90)).close()
    store = await open_store(mongo_url, database=name, retention_days=30)
    assert isinstance(store, MongoStore)
    try:
        async for ix in await store.db.usage_events.list_indexes():
            if ix["name"] == "created_at_ttl":
                assert ix["expireAfterSeconds"] == 30 * 86400
                break
        else:
            pytest.fail("no TTL index on usage_events")
    finally:
        await store.db.client.drop_database(name)
        await store.close()


@pytest.mark.slow
async def test_mongo_database_comes_from_the_url_path_default_onyproxy(mongo_url: str) -> None:
    if os.environ.get("ONYPROXY_TEST_MONGODB_URL"):
        pytest.skip("would create databases named after the URL on a shared server")
    name = f"onyproxy_test_{uuid.uuid4().hex[:12]}"
    host_part, _, query = mongo_url.partition("/?")
    store = await open_store(f"{host_part}/{name}?{query}")
    default = await open_store(mongo_url)
    assert isinstance(store, MongoStore) and isinstance(default, MongoStore)
    try:
        assert store.db.name == name
        assert default.db.name == "onyproxy"
    finally:
        client: AsyncMongoClient = AsyncMongoClient(mongo_url)
        await client.drop_database(name)
        await client.drop_database("onyproxy")
        await client.close()
        await store.close()
        await default.close()
