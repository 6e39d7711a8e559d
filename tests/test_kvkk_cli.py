"""`onyproxy subject ...` as a user runs it, on SQLite and on SecantusDB: export with purposes
and recipients, correction through the account rules, erasure with the list of recipients to
notify, objections and their review, and an audit entry (who, what, why) for each."""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import timedelta

import pytest
from privacy_env import Cli, backend, store_on, usage, write_config
from storage.conftest import mongo_url  # noqa: F401 (the session's SecantusDB)

from onyproxy.privacy.purposes import PURPOSES
from onyproxy.storage import BillingRecord, utcnow

__all__ = ["backend", "store_on"]  # fixtures
pytestmark = pytest.mark.slow


@pytest.fixture
async def person(backend, tmp_path, store_on):
    """A CLI on the backend, and an account with a key, usage on three providers, billing."""
    cli = Cli(write_config(tmp_path, backend, privacy={"controller": "Ony Bilişim A.Ş.",
                                                       "policy_version": "v2"}))
    account = await run(cli.json, "accounts", "create", "--email", "ayse@example.com",
                        "--name", "Ayşe Yılmaz", "--phone", "+90 532 123 45 67",  # noqa: RUF001
                        "--company", "Acme", "--tax-id", "1234567890", "--address", "Kadıköy")  # noqa: RUF001
    key = await run(cli.json, "keys", "create", "--account", account["id"], "--name",
                    "ayse-laptop")
    now = utcnow()
    await store_on.insert_usage_events([
        usage("r1", account["id"], "istanbul", now - timedelta(days=3)),
        usage("r2", account["id"], "istanbul", now - timedelta(days=1)),
        usage("r3", account["id"], "virginia", now - timedelta(days=2)),
        usage("r4", account["id"], "gone-provider", now - timedelta(days=2)),
        usage("r5", "acc_someone_else", "frankfurt", now),
    ])
    await store_on.upsert_billing_record(BillingRecord(account["id"], "2025-03", 4, 40, 20))
    return cli, account, key


async def run(fn, *args, **kwargs):
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_export_holds_everything_about_the_person(person, tmp_path) -> None:
    cli, account, key = person
    out = tmp_path / "export.json"
    done = await run(cli.run, "subject", "export", "--account", "ayse@example.com", "--out",
                     str(out), "--reason", "request by e-mail")
    assert done.stdout == "" and str(out) in done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    data = json.loads(out.read_text())
    assert data["controller"] == "Ony Bilişim A.Ş."
    assert data["account"]["phone"] == "+905321234567"
    assert [k["id"] for k in data["keys"]] == [key["id"]]
    assert "hash" not in data["keys"][0] and "key" not in data["keys"][0]
    assert sorted(e["request_id"] for e in data["usage_events"]) == ["r1", "r2", "r3", "r4"]
    assert data["usage_events"][0]["ip"] == "203.0.113.7"
    assert [r["month"] for r in data["billing_records"]] == ["2025-03"]
    assert {e["action"] for e in data["audit_entries"]} >= {"account.create", "key.create"}
    assert data["purposes"] == json.loads(json.dumps(list(PURPOSES)))
    assert data["privacy_policy"]["current_version"] == "v2"
    recipients = {r["provider"]: r for r in data["recipients"]}
    assert sorted(recipients) == ["gone-provider", "istanbul", "virginia"]
    assert (recipients["istanbul"]["country"], recipients["istanbul"]["requests"]) == (
        "Türkiye", 2)
    assert recipients["virginia"]["country"] == "United States"
    assert recipients["gone-provider"]["country"].startswith("unknown")
    first, last = recipients["istanbul"]["first_at"], recipients["istanbul"]["last_at"]
    assert first < last
    printed = json.loads((await run(cli.run, "subject", "export", "--account",
                                    account["id"])).stdout)
    assert printed["account"]["id"] == account["id"]


async def test_corrections_are_validated_and_audited(person, store_on) -> None:
    cli, account, _ = person
    fixed = await run(cli.json, "subject", "correct", "--account", account["id"], "--field",
                      "email", "--value", "Ayse.Yilmaz@Example.com", "--reason", "typo")
    assert fixed["email"] == "ayse.yilmaz@example.com"
    billing = await run(cli.json, "subject", "correct", "--account", account["id"],
                        "--field", "billing.address", "--value", "Moda, Istanbul")
    assert billing["billing"] == {"tax_id": "1234567890", "address": "Moda, Istanbul"}
    bad = await run(cli.run, "subject", "correct", "--account", account["id"], "--field",
                    "phone", "--value", "12", status=1)
    assert bad.stderr.startswith("onyproxy: phone: '12' is not an E.164")
    entries = [e for e in await store_on.list_audit(target=account["id"])
               if e.action == "subject.correct"]
    assert [e.details for e in entries] == [{"field": "email", "reason": "typo"},
                                            {"field": "billing.address"}]
    assert "ayse.yilmaz" not in json.dumps([e.details for e in entries])


async def test_erasure_removes_personal_data_and_lists_recipients(person, store_on) -> None:
    cli, account, _ = person
    done = await run(cli.json, "subject", "erase", "--account", "ayse@example.com",
                     "--reason", "KVKK art. 7 request")
    assert (done["keys_revoked"], done["usage_events_anonymised"]) == (1, 4)
    assert [r["provider"] for r in done["notify"]] == ["gone-provider", "istanbul", "virginia"]
    erased = await store_on.get_account(account["id"])
    assert erased.email == f"erased-{account['id']}@invalid"
    assert (erased.first_name, erased.last_name, erased.phone, erased.company,
            erased.billing, erased.status) == ("erased", "", None, None, None, "deleted")
    (stored_key,) = await store_on.list_keys(account["id"])
    assert stored_key.revoked and stored_key.name == "erased"
    events = await store_on.list_usage_events(account_id=account["id"])
    assert {(e.ip, e.user_agent) for e in events} == {(None, None)}
    assert [r.requests for r in await store_on.list_billing_records()] == [4]
    (entry,) = [e for e in await store_on.list_audit(target=account["id"])
                if e.action == "subject.erase"]
    assert entry.actor.startswith("cli:") and entry.details["reason"] == "KVKK art. 7 request"
    assert entry.details["notify"] == ["gone-provider", "istanbul", "virginia"]
    table = await run(cli.run, "subject", "erase", "--account", account["id"])
    assert "Notify these recipients" in table.stderr and "Türkiye" in table.stdout
    assert "ayse" not in json.dumps([e.details for e in await store_on.list_audit()])


async def test_objections_wait_for_review_and_are_resolved(person, store_on) -> None:
    cli, account, _ = person
    made = await run(cli.json, "subject", "object", "--account", account["id"], "--reason",
                     "My key was suspended automatically, I was running a batch job",
                     "--decision", "key suspended by the security plugin")
    assert made["status"] == "open" and made["decision"].startswith("key suspended")
    missing = await run(cli.run, "subject", "object", "--account", account["id"], status=2)
    assert "--reason" in missing.stderr
    listed = await run(cli.json, "subject", "objections", "--status", "open")
    assert [o["id"] for o in listed] == [made["id"]]
    table = (await run(cli.run, "subject", "objections")).stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "ACCOUNT", "STATUS"] and made["id"] in table[1]
    resolved = await run(cli.json, "subject", "resolve", made["id"], "--outcome", "upheld",
                         "--resolution", "batch job confirmed; key restored")
    assert resolved["status"] == "upheld" and resolved["resolved_by"].startswith("cli:")
    assert await run(cli.json, "subject", "objections", "--status", "open") == []
    actions = [e.action for e in await store_on.list_audit(target=account["id"])]
    assert actions[-2:] == ["subject.object", "objection.resolve"]


async def test_unknown_people_are_one_line_errors(person) -> None:
    cli, _, _ = person
    for action in ("export", "erase"):
        done = await run(cli.run, "subject", action, "--account", "nobody@example.com",
                         status=1)
        assert done.stderr == "onyproxy: no account 'nobody@example.com'\n"
    done = await run(cli.run, "subject", "resolve", "obj_nope", "--outcome", "rejected",
                     "--resolution", "x", status=1)
    assert "no objection 'obj_nope'" in done.stderr
