"""`onyproxy audit verify` on SQLite and SecantusDB: an intact chain passes (also after
concurrent writers in separate processes); an entry edited, removed, or slipped in directly in
the database fails with exit status 1 naming the first bad entry; SQLite refuses such edits
unless its triggers are dropped first."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys

import pytest
from privacy_env import PEPPER, Cli, backend, store_on, write_config
from pymongo import AsyncMongoClient
from storage.conftest import mongo_url  # noqa: F401 (the session's SecantusDB)

from onyproxy.privacy.audit import arm_audit
from onyproxy.storage import AuditEntry
from onyproxy.storage.audit_chain import derive_key, seal

__all__ = ["backend", "store_on"]  # fixtures
pytestmark = pytest.mark.slow


@pytest.fixture
async def logged(backend, tmp_path, store_on):
    """A CLI on the backend and a keyed chain: the switch point and three audit entries."""
    await arm_audit(store_on, derive_key("", PEPPER))
    for n in range(1, 4):
        await store_on.append_audit(AuditEntry("cli:ops", "key.revoke", f"key_{n}",
                                               {"reason": f"leak {n}"}))
    return Cli(write_config(tmp_path, backend)), await store_on.list_audit_chain()


async def tamper(backend, sql: str, mongo_op) -> None:
    """Change the audit log behind the product's back: SQL on SQLite (triggers dropped, as
    an attacker with the file would), a driver call on MongoDB."""
    if backend.name == "sqlite":
        conn = sqlite3.connect(backend.sqlite_path, isolation_level=None)
        try:
            conn.execute("DROP TRIGGER IF EXISTS audit_log_append_only_update")
            conn.execute("DROP TRIGGER IF EXISTS audit_log_append_only_delete")
            conn.execute(sql)
        finally:
            conn.close()
        return
    client: AsyncMongoClient = AsyncMongoClient(backend.url)
    try:
        await mongo_op(client[backend.options["database"]].audit_log)
    finally:
        await client.close()


async def verify(cli: Cli, *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli.run, "audit", "verify", *args, status=status)


async def test_an_intact_chain_verifies(logged) -> None:
    cli, chain = logged
    done = await verify(cli)
    assert done.stdout == f"ok: 4 entries, head 4:{chain[-1].hash} (0 anchored heads checked)\n"
    report = json.loads((await verify(cli, "--json")).stdout)
    assert report["ok"] and report["head"] == {"seq": 4, "hash": chain[-1].hash}


async def test_an_edited_entry_is_reported(logged, backend) -> None:
    cli, chain = logged
    await tamper(backend, "UPDATE audit_log SET details = '{\"reason\": \"routine\"}' "
                          "WHERE seq = 2",
                 lambda log: log.update_one({"seq": 2}, {"$set": {"details.reason": "x"}}))
    done = await verify(cli, status=1)
    assert "entry #2 was changed after it was written" in done.stderr
    assert chain[1].id in done.stderr and done.stdout == ""
    report = json.loads((await verify(cli, "--json", status=1)).stdout)
    assert (report["ok"], report["entries"], report["first_bad_entry"]["id"]) == (
        False, 1, chain[1].id)


async def test_a_removed_entry_is_reported(logged, backend) -> None:
    cli, chain = logged
    await tamper(backend, "DELETE FROM audit_log WHERE seq = 2",
                 lambda log: log.delete_one({"seq": 2}))
    done = await verify(cli, status=1)
    assert "entry #2 is missing" in done.stderr and chain[2].id in done.stderr


async def test_a_replaced_entry_with_a_fresh_hash_is_reported(logged, backend) -> None:
    cli, chain = logged
    forged = AuditEntry("cli:ops", "key.revoke", "key_2", {}, chain[1].at, chain[1].id)
    seal(forged, 1, "f" * 64)  # an attacker recomputes the hash, but not the whole chain
    await tamper(backend, f"UPDATE audit_log SET details = '{{}}', prev_hash = '{'f' * 64}', "
                          f"hash = '{forged.hash}' WHERE seq = 2",
                 lambda log: log.update_one({"seq": 2}, {"$set": {
                     "details": {}, "prev_hash": "f" * 64, "hash": forged.hash}}))
    done = await verify(cli, status=1)
    assert "entry #2 does not follow entry #1" in done.stderr


async def test_an_entry_slipped_in_directly_is_reported(logged, backend) -> None:
    cli, _ = logged
    await tamper(backend, "INSERT INTO audit_log (id, at, actor, action, target, details) "
                          "VALUES ('aud_fake', '2025-01-01T00:00:00.000+00:00', 'cli:ops', "
                          "'account.create', 'acc_x', '{}')",
                 lambda log: log.insert_one({"id": "aud_fake", "actor": "cli:ops",
                                             "action": "account.create", "details": {}}))
    done = await verify(cli, status=1)
    assert "not part of the chain" in done.stderr and "aud_fake" in done.stderr


async def test_entries_cut_off_the_end_fail_against_a_recorded_head(logged, backend) -> None:
    cli, chain = logged
    head = f"4:{chain[-1].hash}"
    await verify(cli, "--expect-head", head)
    await tamper(backend, "DELETE FROM audit_log WHERE seq = 4",
                 lambda log: log.delete_one({"seq": 4}))
    await verify(cli)  # the rest of the chain is consistent ...
    done = await verify(cli, "--expect-head", head, status=1)  # ... but shorter than recorded
    assert "entries were removed" in done.stderr
    bad = await verify(cli, "--expect-head", "three", status=1)
    assert "--expect-head: expected SEQ:HASH" in bad.stderr


async def test_the_product_cannot_edit_the_sqlite_log(logged, backend) -> None:
    if backend.name != "sqlite":
        pytest.skip("triggers are SQLite's; MongoDB has no product path that edits entries")
    conn = sqlite3.connect(backend.sqlite_path, isolation_level=None)
    try:
        for sql in ("UPDATE audit_log SET actor = 'x' WHERE seq = 1",
                    "DELETE FROM audit_log WHERE seq = 1"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    finally:
        conn.close()


async def test_writers_in_parallel_processes_keep_one_chain(logged) -> None:
    cli, _ = logged
    command = [sys.executable, "-m", "onyproxy", "--config", str(cli.config), "accounts",
               "create", "--name", "Parallel Writer", "--email"]
    procs = [await asyncio.create_subprocess_exec(*command, f"p{n}@example.com",
                                                  stdout=asyncio.subprocess.DEVNULL,
                                                  stderr=asyncio.subprocess.DEVNULL,
                                                  cwd=cli.config.parent)
             for n in range(6)]
    assert [await p.wait() for p in procs] == [0] * 6
    done = await verify(cli)
    assert done.stdout.startswith("ok: 10 entries, head 10:")
