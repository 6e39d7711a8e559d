"""`onyproxy notify policy-change` against a local SMTP server (aiosmtpd), on SQLite and on
SecantusDB: who is pending, the dry run, one notice per account and version, sign-in with a
password from the environment, and clear failures when the server cannot be used."""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from privacy_env import BACKENDS, Cli, backend_param, store_on, write_config
from storage.conftest import (
    free_port,
    mongo_url,  # noqa: F401 (the session's SecantusDB)
)

from onyproxy.accounts import create_account
from onyproxy.storage import utcnow

__all__ = ["store_on"]
pytestmark = pytest.mark.slow
PASSWORD = "smtp-secret-from-env"


class Inbox:
    """An aiosmtpd handler keeping what it received; signs in ``notices``/``PASSWORD``."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        good = auth_data.login == b"notices" and auth_data.password == PASSWORD.encode()
        if good:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=good)


@pytest.fixture
def smtp():
    inbox = Inbox()
    # A local test server without TLS: AUTH over plain text is fine on loopback.
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(),
                            authenticator=inbox.authenticate, auth_require_tls=False)
    controller.start()
    yield inbox, controller.port
    controller.stop()


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    return backend_param(request, tmp_path)


def privacy(port: int, **smtp: Any) -> dict[str, Any]:
    return {"policy_version": "2025-06", "policy_url": "https://example.com/privacy",
            "controller": "Ony Bilişim", "smtp": {
                "host": "127.0.0.1", "port": port, "starttls": False, "username": "notices",
                "password": "${ONY_TEST_SMTP_PASSWORD}", "from": "privacy@example.com",
                **smtp}}


@pytest.fixture
async def people(store_on):
    made = {}
    for name in ("ada", "bob", "cem", "dan"):
        made[name] = await create_account(store_on, email=f"{name}@example.com", name=name)
    await store_on.record_policy_acceptance(made["ada"].id, "2025-06", utcnow())
    await store_on.record_policy_acceptance(made["bob"].id, "2024-01", utcnow())
    await store_on.set_account_status(made["dan"].id, "deleted")
    return made


async def run(cli: Cli, *args: str, status: int = 0):
    return await asyncio.to_thread(cli.run, "notify", "policy-change", *args, status=status)


async def test_pending_accounts_get_one_notice_per_version(people, smtp, backend, tmp_path,
                                                           monkeypatch) -> None:
    inbox, port = smtp
    monkeypatch.setenv("ONY_TEST_SMTP_PASSWORD", PASSWORD)
    cli = Cli(write_config(tmp_path, backend, privacy=privacy(port)))
    dry = await asyncio.to_thread(cli.json, "notify", "policy-change", "--dry-run")
    assert [a["email"] for a in dry["would_notify"]] == ["bob@example.com", "cem@example.com"]
    assert (dry["pending"], inbox.messages) == (2, [])

    sent = await asyncio.to_thread(cli.json, "notify", "policy-change")
    assert [s["email"] for s in sent["sent"]] == ["bob@example.com", "cem@example.com"]
    assert inbox.logins == ["notices"]
    assert [to for to, _ in inbox.messages] == [["bob@example.com"], ["cem@example.com"]]
    message = inbox.messages[0][1]
    assert message["From"] == "privacy@example.com"
    assert message["Subject"] == "Privacy policy update (version 2025-06)"
    text = message.get_payload(decode=True).decode()
    assert "https://example.com/privacy" in text and "Hello bob" in text
    assert "KVKK" in text and "Ony Bilişim" in text

    again = await asyncio.to_thread(cli.json, "notify", "policy-change")
    assert (again["sent"], again["already_notified"]) == ([], 2)
    assert len(inbox.messages) == 2
    summary = await run(cli)
    assert "notified 0 accounts" in summary.stderr


async def test_acceptance_after_the_notice_ends_pending(people, smtp, backend, tmp_path,
                                                        monkeypatch, store_on) -> None:
    _, port = smtp
    monkeypatch.setenv("ONY_TEST_SMTP_PASSWORD", PASSWORD)
    cli = Cli(write_config(tmp_path, backend, privacy=privacy(port)))
    await run(cli)
    await store_on.record_policy_acceptance(people["cem"].id, "2025-06", utcnow())
    dry = await asyncio.to_thread(cli.json, "notify", "policy-change", "--dry-run")
    assert (dry["pending"], dry["already_notified"]) == (1, 1)
    (entry, *_) = [e for e in await store_on.list_audit() if e.action == "policy.notify"]
    assert entry.details == {"version": "2025-06", "sent": 2, "failed": 0}


async def test_a_server_that_cannot_be_used_is_a_one_line_error(people, smtp, backend,
                                                                tmp_path, monkeypatch) -> None:
    inbox, port = smtp
    monkeypatch.setenv("ONY_TEST_SMTP_PASSWORD", "wrong")
    cases = [
        (privacy(port), "mail server 127.0.0.1"),  # the password is refused
        (privacy(port, starttls=True), "STARTTLS"),  # never falls back to plain text
        (privacy(free_port()), "cannot reach the mail server"),
        (privacy(port, host=""), "privacy.smtp.host is empty"),
    ]
    for settings, says in cases:
        cli = Cli(write_config(tmp_path, backend, privacy=settings))
        done = await run(cli, status=1)
        assert done.stderr.startswith("onyproxy: ") and says in done.stderr, done.stderr
    assert inbox.messages == []


async def test_no_policy_version_means_nothing_to_notify(people, backend, tmp_path) -> None:
    cli = Cli(write_config(tmp_path, backend))
    done = await run(cli, status=1)
    assert "privacy.policy_version: is not set" in done.stderr
