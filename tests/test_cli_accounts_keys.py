"""``onyproxy accounts|keys|quickstart`` as a user runs them: subprocesses on a config file,
alone and next to a running gateway on the same SQLite file; JSON outputs, one-line errors
with exit status 1, the audit log, and no way back from what is stored or logged to a key."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from serve_process import GatewayProcess, post_json
from storage.conftest import mongo_url  # noqa: F401 (the session's SecantusDB)

from onyproxy.keys import create_key
from onyproxy.storage import open_store

pytestmark = pytest.mark.slow

CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "hi"}]}
CONFIG: dict[str, Any] = {
    "providers": {"mock": {"type": "mock"}},
    "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]},
               "mock-large": {"targets": [{"provider": "mock", "model": "mock-large"}]}},
    "pipeline": [{"name": "auth", "cache_ttl_s": 0.5}, {"name": "routing", "retries": 0}],
}


def write_config(tmp_path: Path, **sections: Any) -> Path:
    path = tmp_path / "gateway.yaml"
    raw = {**CONFIG, "storage": {"url": f"sqlite:///{tmp_path}/data/onyproxy.db"}, **sections}
    path.write_text(yaml.safe_dump(raw))
    return path


def cli(config: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "onyproxy", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, cwd=config.parent)
    if ok:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == ""
    return done


def cli_json(config: Path, *args: str) -> Any:
    return json.loads(cli(config, *args, "--json").stdout)


@pytest.fixture
def config(tmp_path) -> Path:
    return write_config(tmp_path)


def test_accounts_create_list_show_update_delete(config):
    account = cli_json(config, "accounts", "create", "--email", "Ada@Example.com", "--name",
                       "Ada Lovelace", "--phone", "+90 532 123 45 67", "--company", "AE Ltd",
                       "--tax-id", "1234567890", "--address", "Istanbul")
    assert (account["email"], account["phone"], account["billing"]) == (
        "ada@example.com", "+905321234567", {"tax_id": "1234567890", "address": "Istanbul"})
    assert [a["id"] for a in cli_json(config, "accounts", "list")] == [account["id"]]
    assert cli_json(config, "accounts", "show", "ada@example.com") == account
    changed = cli_json(config, "accounts", "update", account["id"], "--name", "Ada King",
                       "--phone", "", "--role", "admin")
    assert (changed["last_name"], changed["phone"], changed["role"]) == ("King", None, "admin")
    text = cli(config, "accounts", "delete", "ada@example.com")
    assert f"Deleted account {account['id']}" in text.stderr
    assert cli_json(config, "accounts", "show", account["id"])["status"] == "deleted"
    table = cli(config, "accounts", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "EMAIL", "NAME"] and "ada@example.com" in table[1]


@pytest.mark.parametrize("args, says", [
    (["--email", "ada@example.com", "--name", "Again"], "an account with email ada@example.com"
                                                        " already exists"),
    (["--email", "not-an-email", "--name", "X"], "email: 'not-an-email' is not a valid email"),
    (["--email", "b@example.com", "--name", "X", "--phone", "12"], "phone: '12' is not an E.164"),
    (["--email", "b@example.com", "--name", "X", "--tax-id", "123456"], "company: is required"),
])
def test_account_errors_are_one_line_on_stderr(config, args, says):
    cli(config, "accounts", "create", "--email", "ada@example.com", "--name", "Ada")
    done = cli(config, "accounts", "create", *args, ok=False)
    assert done.stderr.startswith(f"onyproxy: {says}") and done.stderr.count("\n") == 1


@pytest.mark.parametrize("args, says", [
    (["keys", "create", "--account", "nobody@example.com"], "no account 'nobody@example.com'"),
    (["keys", "create", "--account", "ada@example.com", "--rpm", "0"], "rpm: must be at least"),
    (["keys", "create", "--account", "ada@example.com", "--expires", "soon"], "expires: 'soon'"),
    (["keys", "revoke", "key_nope"], "no key 'key_nope'"),
    (["accounts", "show", "acc_nope"], "no account 'acc_nope'"),
])
def test_key_errors_are_one_line_on_stderr(config, args, says):
    cli(config, "accounts", "create", "--email", "ada@example.com", "--name", "Ada")
    assert says in cli(config, *args, ok=False).stderr


def test_keys_create_list_revoke_rotate_and_the_audit_log(config):
    account = cli_json(config, "accounts", "create", "--email", "ada@example.com", "--name",
                       "Ada")
    key = cli_json(config, "keys", "create", "--account", "ada@example.com", "--name", "ci",
                   "--rpm", "60", "--budget-usd", "25", "--models", "mock-small,mock-large",
                   "--expires", "2099-01-01")
    assert key["key"].startswith(key["prefix"]) and key["models"] == ["mock-small",
                                                                       "mock-large"]
    assert (key["rpm"], key["budget_usd"], key["expires_at"]) == (60, "25",
                                                                  "2099-01-01T00:00:00.000Z")
    plain = cli(config, "keys", "create", "--account", account["id"])
    assert plain.stdout.count("\n") == 1 and plain.stdout.startswith("ony-")
    assert "shown only this once" in plain.stderr and plain.stdout.strip() not in plain.stderr
    listed = cli_json(config, "keys", "list", "--account", "ada@example.com")
    assert [k["id"] for k in listed] == [key["id"], listed[1]["id"]]
    assert all("key" not in k and "hash" not in k for k in listed)
    rotated = cli_json(config, "keys", "rotate", key["id"])
    assert rotated["name"] == "ci" and rotated["key"] != key["key"]
    assert cli_json(config, "keys", "revoke", rotated["id"])["revoked"] is True
    table = cli(config, "keys", "list").stdout
    assert table.count("revoked") == 2 and "active" in table
    switch, *entries = asyncio.run(audit_entries(config))
    assert switch[1:] == ("audit.chain_keyed", "audit-chain")  # the chain is keyed from #1
    user = entries[0][0]
    assert user.startswith("cli:") and {actor for actor, _, _ in entries} == {user}
    assert [(action, target) for _, action, target in entries] == [
        ("account.create", account["id"]), ("key.create", key["id"]),
        ("key.create", listed[1]["id"]), ("key.rotate", key["id"]),
        ("key.revoke", rotated["id"])]


async def audit_entries(config: Path) -> list[tuple[str, str, str | None]]:
    url = yaml.safe_load(config.read_text())["storage"]["url"]
    async with await open_store(url) as store:
        return [(e.actor, e.action, e.target) for e in await store.list_audit()]


def test_the_cli_and_a_running_gateway_share_the_store_and_the_pepper(tmp_path):
    gateway = GatewayProcess({**CONFIG, "security": {"key_pepper": ""}}, tmp_path)
    try:
        gateway.wait_ready()
        config = gateway.config_path
        cli(config, "accounts", "create", "--email", "ada@example.com", "--name", "Ada")
        key = cli_json(config, "keys", "create", "--account", "ada@example.com")
        secret = cli(config, "keys", "create", "--account", "ada@example.com").stdout.strip()
        auth = {"authorization": f"Bearer {key['key']}"}
        assert post_json(gateway.url("/v1/chat/completions"), CHAT, auth)[0] == 200
        cli(config, "keys", "revoke", key["id"])
        deadline = time.monotonic() + 0.5 + 0.5  # cache_ttl_s, and a margin for the calls
        while post_json(gateway.url("/v1/chat/completions"), CHAT, auth)[0] == 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert post_json(gateway.url("/v1/chat/completions"), CHAT,
                         {"x-api-key": secret})[0] == 200
    finally:
        gateway.stop()
    pepper = tmp_path / "key_pepper"  # next to onyproxy.db, which the gateway put in tmp_path
    assert pepper.stat().st_mode & 0o777 == 0o600
    assert gateway.log().count("generated a key pepper") == 1
    assert_unrecoverable([key["key"], secret], tmp_path)


def test_quickstart_prints_a_working_key_once_per_run(tmp_path):
    gateway = GatewayProcess(CONFIG, tmp_path)
    try:
        gateway.wait_ready()
        first = cli(gateway.config_path, "quickstart")
        second = cli(gateway.config_path, "quickstart")
        keys = [first.stdout.strip(), second.stdout.strip()]
        assert keys[0] != keys[1] and all(k.startswith("ony-") for k in keys)
        assert first.stdout == keys[0] + "\n" and keys[0] not in first.stderr
        assert "Created the local account you@example.com" in first.stderr
        assert "Created the local account" not in second.stderr
        for key in keys:
            status, body, _ = post_json(gateway.url("/v1/chat/completions"), CHAT,
                                        {"authorization": f"Bearer {key}"})
            assert status == 200 and body["choices"][0]["message"]["content"] == "echo: hi"
    finally:
        gateway.stop()
    assert_unrecoverable(keys, tmp_path)


def test_owner_keys_come_from_owner_and_quickstart_and_show_in_listings(config):
    cli(config, "accounts", "create", "--email", "ada@example.com", "--name", "Ada")
    owner = cli_json(config, "keys", "create", "--account", "ada@example.com", "--owner")
    plain = cli_json(config, "keys", "create", "--account", "ada@example.com")
    assert (owner["owner"], plain["owner"]) == (True, False)
    told = cli(config, "keys", "create", "--account", "ada@example.com", "--owner").stderr
    assert "; owner" in told
    quick = cli_json(config, "quickstart", "--email", "ada@example.com")
    assert quick["owner"] is True and quick["name"] == "quickstart"
    listed = {k["id"]: k["owner"] for k in cli_json(config, "keys", "list")}
    assert (listed[owner["id"]], listed[plain["id"]], listed[quick["id"]]) == (True, False, True)
    table = cli(config, "keys", "list").stdout
    assert "ROLE" in table and table.count("owner") == 3
    assert cli_json(config, "keys", "rotate", owner["id"])["owner"] is True
    asyncio.run(create_child(config, quick["id"]))
    told = cli(config, "keys", "revoke", quick["id"]).stderr
    assert "and 1 key(s) created with it" in told
    assert all(k["revoked"] for k in cli_json(config, "keys", "list")
               if k["created_by"] == quick["id"])


async def create_child(config: Path, parent_id: str) -> None:
    """A key made from ``parent_id``'s dashboard session (the dashboard's own call)."""
    url = yaml.safe_load(config.read_text())["storage"]["url"]
    async with await open_store(url) as store:
        parent = await store.get_key(parent_id)
        pepper = (config.parent / "data" / "key_pepper").read_text().strip()
        await create_key(store, parent.account_id, pepper=pepper, creator=parent)


def test_quickstart_refuses_mongodb(tmp_path):
    config = write_config(tmp_path, storage={"url": "mongodb://127.0.0.1:1/onyproxy"})
    assert "for the local SQLite store only" in cli(config, "quickstart", ok=False).stderr


def test_accounts_and_keys_on_mongodb_need_a_configured_pepper(tmp_path, mongo_url):  # noqa: F811
    url = mongo_url.replace("/?", f"/onyproxy_cli_{uuid.uuid4().hex[:10]}?")
    config = write_config(tmp_path, storage={"url": url})
    done = cli(config, "keys", "list", ok=False)
    assert "security.key_pepper is empty: with MongoDB" in done.stderr
    config = write_config(tmp_path, storage={"url": url},
                          security={"key_pepper": "mongo-cli-pepper-0123456789abcdef"})
    account = cli_json(config, "accounts", "create", "--email", "m@example.com", "--name", "M")
    key = cli_json(config, "keys", "create", "--account", account["id"])
    assert [k["id"] for k in cli_json(config, "keys", "list")] == [key["id"]]


def assert_unrecoverable(secrets: list[str], directory: Path) -> None:
    """No file under ``directory`` (database, WAL, logs, pepper) holds any part of a secret
    past its display prefix."""
    stored = b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())
    for secret in secrets:
        assert secret.removeprefix("ony-")[8:].encode() not in stored
