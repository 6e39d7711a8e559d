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
from onyproxy.storage import AuditEntry, StorageError, open_store
from onyproxy.storage.audit_chain import derive_key, entry_hash, seal

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


# --- the key, the switch point of older chains, the anchor file ------------------------------

async def rewrite(backend, entries: list[AuditEntry]) -> None:
    """Store ``entries`` (same seq) over the chain's, as an attacker with write access would."""
    for e in entries:
        await tamper(backend, f"UPDATE audit_log SET action = '{e.action}', details = "
                              f"'{json.dumps(e.details)}', prev_hash = '{e.prev_hash}', "
                              f"hash = '{e.hash}' WHERE seq = {e.seq}",
                     lambda log, e=e: log.update_one({"seq": e.seq}, {"$set": {
                         "action": e.action, "details": e.details, "prev_hash": e.prev_hash,
                         "hash": e.hash}}))


def resealed(chain: list[AuditEntry], start: int, key: bytes | None = None,
             **change) -> list[AuditEntry]:
    """The chain from index ``start`` re-hashed (without the audit key by default), the first
    of them changed by ``change``."""
    out, prev = [], chain[start - 1] if start else None
    for i, entry in enumerate(chain[start:]):
        copy = AuditEntry(entry.actor, change.get("action", entry.action) if i == 0 else
                          entry.action, entry.target,
                          change.get("details", entry.details) if i == 0 else entry.details,
                          entry.at, entry.id)
        seal(copy, prev.seq if prev else None, prev.hash if prev else None, key)
        out.append(copy)
        prev = copy
    return out


async def test_a_chain_rehashed_without_the_audit_key_fails(logged, backend) -> None:
    cli, chain = logged
    await verify(cli)
    # Entry #3 changed and #3..#4 re-hashed: a consistent chain, but not sealed with the key.
    await rewrite(backend, resealed(chain, 2, details={"reason": "routine"}))
    done = await verify(cli, status=1)
    assert "entry #3 was changed after it was written" in done.stderr
    await rewrite(backend, resealed(chain, 2, key=b"a guessed key", details={}))
    assert "entry #3 was changed" in (await verify(cli, status=1)).stderr


async def test_an_unkeyed_chain_is_verified_and_continued_after_a_switch_point(
        backend, tmp_path, store_on) -> None:
    for n in (1, 2):  # written the way older versions did: plain SHA-256
        await store_on.append_audit(AuditEntry("cli:ops", "key.revoke", f"key_{n}", {}))
    cli = Cli(write_config(tmp_path, backend))
    assert (await verify(cli)).stdout.startswith("ok: 3 entries, head 3:")
    chain = await store_on.list_audit_chain()
    switch = chain[2]
    assert (switch.action, switch.details) == ("audit.chain_keyed",
                                               {"scheme": "hmac-sha256", "unkeyed_entries": 2})
    assert switch.hash == entry_hash(switch, derive_key("", PEPPER)) != entry_hash(switch)
    await asyncio.to_thread(cli.run, "accounts", "create", "--name", "After", "--email",
                            "after@example.com")
    assert (await verify(cli)).stdout.startswith("ok: 4 entries, head 4:")
    await rewrite(backend, resealed(chain, 1, details={"x": 1})[:1])  # the old part still holds
    assert "entry #3 does not follow entry #2" in (await verify(cli, status=1)).stderr


async def test_a_chain_rewritten_as_an_old_unkeyed_one_contradicts_the_anchor_file(
        backend, tmp_path, store_on) -> None:
    await store_on.append_audit(AuditEntry("cli:ops", "key.revoke", "key_1", {}))
    anchors = tmp_path / "elsewhere" / "anchors.log"
    cli = Cli(write_config(tmp_path, backend, security={
        "key_pepper": PEPPER, "jwt_secret": "j" * 40, "audit_anchor_file": str(anchors)}))
    await verify(cli)  # the switch point (#2) is added and anchored
    chain = await store_on.list_audit_chain()
    assert (await verify(cli)).stdout.endswith("(1 anchored heads checked)\n")
    # The attacker turns the switch point into an ordinary unkeyed entry, hoping the next
    # start adds a new switch point after the forged part.
    await rewrite(backend, resealed(chain, 1, action="key.revoke"))
    done = await verify(cli, status=1)
    assert "entry #2 is not the one recorded earlier" in done.stderr
    assert (await store_on.count_audit()) == 2  # no new switch point blessed the rewrite
    assert anchors.read_text().count("\n") == 1


async def test_the_gateway_anchors_the_head_at_start_and_shows_it(gateway, tmp_path) -> None:
    import aiohttp

    server = await gateway()
    # Written when the chain got its switch point (#1), and by the start-up anchoring.
    lines = (tmp_path / "audit-anchor.log").read_text().splitlines()
    assert [line.split(" ")[1][:2] for line in lines] == ["1:", "1:"]
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/metrics")) as resp:
        assert "onyproxy_audit_head_seq 1.0" in await resp.text()


async def test_dropped_sqlite_triggers_are_recreated_at_open(logged, backend, caplog) -> None:
    if backend.name != "sqlite":
        pytest.skip("SQLite's triggers")
    await tamper(backend, "SELECT 1", None)  # drops both triggers
    store = await open_store(backend.url)
    try:
        with pytest.raises(StorageError, match="append-only"):
            await store._run(lambda c: c.execute("DELETE FROM audit_log WHERE seq = 1"))
    finally:
        await store.close()
    assert "protection triggers audit_log_append_only_update, audit_log_append_only_delete " \
           "were dropped" in caplog.text
