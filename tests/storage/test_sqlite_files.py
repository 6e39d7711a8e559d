"""The SQLite files on disk: private permissions, and nothing of an erased person left in the
file's free pages or in the write-ahead log."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

from onyproxy.storage import Account, UsageEvent, open_store

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CANARIES = ("canary-erasure-7f3a@example.com", "Zeynepcanary", "Kanaryaoglu", "+905551234987",
            "CanaryCorp-91ab", "198.51.100.77", "canary-agent/9.9.9")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_new_database_folder_and_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "onyproxy.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.create_account(Account(id="acc_1", email="a@example.com", first_name="A"))
        files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert mode(path.parent) == 0o700
    finally:
        await store.close()


async def test_files_left_readable_by_others_are_tightened_at_open(tmp_path: Path) -> None:
    path = tmp_path / "onyproxy.db"
    store = await open_store(f"sqlite:///{path}")
    await store.create_account(Account(id="acc_1", email="a@example.com", first_name="A"))
    await store.close()
    path.chmod(0o644)
    again = await open_store(f"sqlite:///{path}")
    try:
        await again.create_account(Account(id="acc_2", email="b@example.com", first_name="B"))
        for suffix in ("", "-wal", "-shm"):
            assert mode(Path(f"{path}{suffix}")) == 0o600, suffix
    finally:
        await again.close()


async def test_an_erased_person_is_not_readable_in_the_raw_files(tmp_path: Path) -> None:
    path = tmp_path / "onyproxy.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        email, first, last, phone, company, ip, agent = CANARIES
        await store.create_account(Account(id="acc_1", email=email, first_name=first,
                                           last_name=last, phone=phone, company=company))
        await store.create_account(Account(id="acc_2", email="stays@example.com",
                                           first_name="Stays"))
        await store.insert_usage_events([
            UsageEvent(request_id=f"r{i}", account_id="acc_1", key_id=None, model="m",
                       provider="openai", input_tokens=1, output_tokens=1,
                       created_at=T0, ip=ip, user_agent=agent) for i in range(3)])
        raw = path.read_bytes() + Path(f"{path}-wal").read_bytes()
        assert all(c.encode() in raw for c in CANARIES)  # the test can see them at all
        await store.erase_subject("acc_1", email="erased-acc_1@invalid", at=T0)
        raw = b"".join(Path(f"{path}{s}").read_bytes() for s in ("", "-wal")
                       if Path(f"{path}{s}").exists())
        assert [c for c in CANARIES if c.encode() in raw] == []
        assert b"stays@example.com" in raw
    finally:
        await store.close()
