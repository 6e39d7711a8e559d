"""``onyproxy usage report`` and ``onyproxy invoices list|show|export|close`` on a config file
and its SQLite store, as an operator runs them (JSON, tables, CSV, one-line errors)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from onyproxy.accounts import create_account
from onyproxy.cli import main
from onyproxy.storage import UsageEvent, open_store

THIS_MONTH = datetime.now(UTC).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
LAST_MONTH = (THIS_MONTH - timedelta(days=1)).replace(day=3)


def event(request_id: str, account: str, at: datetime, model: str = "gpt-4o",
          key: str = "key_1", cost: str = "0.25", provider: str = "openai") -> UsageEvent:
    return UsageEvent(request_id=request_id, account_id=account, key_id=key, model=model,
                      provider=provider, input_tokens=1000, output_tokens=100,
                      cost_usd=Decimal(cost), created_at=at)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, str]:
    """A config file and its store, seeded: (config path, Ada's account id)."""
    url = f"sqlite:///{tmp_path}/onyproxy.db"
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": url},
                                      "security": {"key_pepper": "cli-usage-pepper-0123456789"},
                                      "providers": {"mock": {"type": "mock"}}}))

    async def seed() -> str:
        store = await open_store(url)
        try:
            ada = await create_account(store, email="ada@example.com", name="Ada Lovelace")
            await store.insert_usage_events([
                event("r1", ada.id, THIS_MONTH),
                event("r2", ada.id, THIS_MONTH + timedelta(days=1), model="claude",
                      key="key_2", provider="anthropic", cost="1.5"),
                event("r3", "acc_other", THIS_MONTH),
                event("r4", ada.id, LAST_MONTH, cost="2"),
            ])
            return ada.id
        finally:
            await store.close()

    return config, asyncio.run(seed())


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["--config", str(config), *args]) == 0
    return capsys.readouterr().out


def run_json(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    return json.loads(run(config, capsys, *args, "--json"))


def test_usage_report_groups_by_model_this_month_by_default(setup, capsys):
    config, _ = setup
    report = run_json(config, capsys, "usage", "report")
    assert [(r["model"], r["requests"], r["prompt_tokens"], r["completion_tokens"],
             r["cost_usd"]) for r in report["rows"]] == [
        ("claude", 1, 1000, 100, "1.5"), ("gpt-4o", 2, 2000, 200, "0.50")]
    assert report["total"]["cost_usd"] == "2.00" and report["by"] == "model"


def test_usage_report_filters_and_other_groupings(setup, capsys):
    config, ada = setup
    by_key = run_json(config, capsys, "usage", "report", "--account", "ada@example.com",
                      "--by", "key")
    assert [(r["key"], r["cost_usd"]) for r in by_key["rows"]] == [("key_1", "0.25"),
                                                                   ("key_2", "1.5")]
    by_day = run_json(config, capsys, "usage", "report", "--account", ada, "--by", "day",
                      "--from", LAST_MONTH.date().isoformat(), "--to",
                      THIS_MONTH.date().isoformat())
    assert [r["day"] for r in by_day["rows"]] == [LAST_MONTH.date().isoformat(),
                                                   THIS_MONTH.date().isoformat()]
    by_provider = run_json(config, capsys, "usage", "report", "--key", "key_2", "--by",
                           "provider")
    assert [r["provider"] for r in by_provider["rows"]] == ["anthropic"]


def test_usage_report_table_has_the_columns_and_a_total(setup, capsys):
    config, _ = setup
    lines = run(config, capsys, "usage", "report").splitlines()
    assert lines[0].split() == ["MODEL", "REQUESTS", "PROMPT_TOKENS", "COMPLETION_TOKENS",
                                "COST_USD"]
    assert lines[-1].split() == ["TOTAL", "3", "3000", "300", "2.00"]


def test_invoices_list_show_and_csv_export(setup, capsys):
    config, ada = setup
    month = THIS_MONTH.strftime("%Y-%m")
    listed = run_json(config, capsys, "invoices", "list", "--month", month)
    assert [(i["account_id"], i["status"], i["cost_usd"]) for i in listed] == sorted([
        ("acc_other", "open", "0.25"), (ada, "open", "1.75")])
    shown = run_json(config, capsys, "invoices", "show", "--month", month, "--account",
                     "ada@example.com")
    assert [(line["model"], line["cost_usd"]) for line in shown["lines"]] == [
        ("claude", "1.5"), ("gpt-4o", "0.25")]
    exported = run(config, capsys, "invoices", "export", "--month", month, "--account", ada,
                   "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["model"], r["cost_usd"]) for r in rows] == [
        ("claude", "1.5"), ("gpt-4o", "0.25"), ("TOTAL", "1.75")]


def test_closing_a_past_month_makes_its_invoices_final(setup, capsys):
    config, ada = setup
    month = LAST_MONTH.strftime("%Y-%m")
    assert main(["--config", str(config), "invoices", "close", "--month", month]) == 0
    assert "1 billing record" in capsys.readouterr().err
    (invoice,) = run_json(config, capsys, "invoices", "list", "--month", month)
    assert (invoice["account_id"], invoice["status"], invoice["cost_usd"]) == (
        ada, "closed", "2")


def test_wrong_input_is_one_line_and_status_one(setup, capsys):
    config, _ = setup
    for args in (["usage", "report", "--from", "yesterday"],
                 ["invoices", "show", "--account", "nobody@example.com"],
                 ["invoices", "close", "--month", THIS_MONTH.strftime("%Y-%m")]):
        with pytest.raises(SystemExit) as exited:
            main(["--config", str(config), *args])
        assert exited.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("onyproxy: ") and len(err.strip().splitlines()) == 1


def test_account_budget_is_set_changed_and_lifted_from_the_cli(setup, capsys):
    config, _ = setup
    created = run_json(config, capsys, "accounts", "create", "--email", "corp@example.com",
                       "--name", "Corp Buyer", "--budget-usd", "500")
    assert created["budget_usd"] == "500"
    changed = run_json(config, capsys, "accounts", "update", "corp@example.com",
                       "--budget-usd", "12.50")
    assert changed["budget_usd"] == "12.50"
    lifted = run_json(config, capsys, "accounts", "update", created["id"], "--budget-usd", "")
    assert lifted["budget_usd"] is None
    with pytest.raises(SystemExit):
        main(["--config", str(config), "accounts", "update", created["id"],
              "--budget-usd", "lots"])
    assert "budget_usd" in capsys.readouterr().err
