"""Resolving the key pepper: configured, generated next to a SQLite file, or refused."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import make_config

from onyproxy.accounts import create_account
from onyproxy.keys import create_key
from onyproxy.pepper import PepperError, _create_pepper_file, pepper_path, resolve_pepper
from onyproxy.storage import open_store


@pytest.fixture
async def store(tmp_path):
    opened = await open_store(f"sqlite:///{tmp_path}/onyproxy.db")
    yield opened
    await opened.close()


def config_for(tmp_path, pepper: str = "", url: str | None = None):
    return make_config({"security": {"key_pepper": pepper},
                        "storage": {"url": url or f"sqlite:///{tmp_path}/onyproxy.db"}})


async def test_a_configured_pepper_wins_and_no_file_is_written(tmp_path, store):
    pepper = "configured-pepper-0123456789"
    assert await resolve_pepper(config_for(tmp_path, pepper), store) == pepper
    assert not (tmp_path / "key_pepper").exists()


async def test_a_short_configured_pepper_is_refused(tmp_path, store):
    with pytest.raises(PepperError, match="shorter than 16 characters"):
        await resolve_pepper(config_for(tmp_path, "short"), store)


async def test_the_generated_pepper_is_reused(tmp_path, store):
    first = await resolve_pepper(config_for(tmp_path), store)
    assert len(first) >= 32 and (tmp_path / "key_pepper").stat().st_mode & 0o777 == 0o600
    assert await resolve_pepper(config_for(tmp_path), store) == first


async def test_a_lost_pepper_file_is_not_silently_replaced(tmp_path, store):
    pepper = await resolve_pepper(config_for(tmp_path), store)
    account = await create_account(store, email="ada@example.com", name="Ada")
    await create_key(store, account.id, pepper=pepper)
    (tmp_path / "key_pepper").unlink()
    with pytest.raises(PepperError, match="already holds API keys"):
        await resolve_pepper(config_for(tmp_path), store)
    assert not (tmp_path / "key_pepper").exists()


async def test_a_truncated_pepper_file_is_an_error(tmp_path, store):
    (tmp_path / "key_pepper").write_text("abc\n")
    with pytest.raises(PepperError, match="empty or truncated"):
        await resolve_pepper(config_for(tmp_path), store)


def test_processes_racing_to_create_it_all_get_the_one_that_won(tmp_path):
    path = tmp_path / "data" / "key_pepper"
    with ThreadPoolExecutor(8) as pool:
        peppers = set(pool.map(lambda _: _create_pepper_file(path), range(16)))
    assert peppers == {path.read_text().strip()}
    assert os.listdir(path.parent) == ["key_pepper"]  # no temporary files left


def test_where_the_file_lives():
    assert str(pepper_path("sqlite:///./data/onyproxy.db")) == "data/key_pepper"
    assert pepper_path("sqlite:///:memory:") is None
    assert pepper_path("mongodb://db/onyproxy") is None


async def test_an_in_memory_store_gets_a_pepper_for_this_process(tmp_path):
    async with await open_store("sqlite:///:memory:") as memory:
        pepper = await resolve_pepper(config_for(tmp_path, url="sqlite:///:memory:"), memory)
    assert len(pepper) >= 32 and not list(tmp_path.iterdir())
