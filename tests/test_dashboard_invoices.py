"""Invoices by month: the list, its JSON and each month's CSV, from onyproxy.billing."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from dashboard_fixtures import open_dashboard
from test_dashboard_usage import event

from onyproxy.billing import invoices, invoices_csv, month_of
from onyproxy.storage import BillingLine, BillingRecord, utcnow

OLD_MONTH = "2025-03"


async def with_invoices(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    other = await ui.person("bob@example.com")
    store = ui.gw.store
    await store.upsert_billing_record(BillingRecord(
        account_id=person.account.id, month=OLD_MONTH, requests=3, input_tokens=300,
        output_tokens=60, cost_usd=Decimal("1.25"), closed_at=utcnow(),
        lines=[BillingLine("gpt-4o", 2, 200, 40, 0, Decimal("1.00")),
               BillingLine("claude-sonnet", 1, 100, 20, 0, Decimal("0.25"))]))
    await store.upsert_billing_record(BillingRecord(
        account_id=other.account.id, month=OLD_MONTH, requests=1, cost_usd=Decimal("99"),
        closed_at=utcnow()))
    await store.insert_usage_events([event(1, person.account.id, "gpt-4o", cost="0.5")])
    await ui.sign_in(person.secret)
    return ui, person


async def test_invoices_list_closed_and_open_months(aiohttp_client, tmp_path):
    ui, _ = await with_invoices(aiohttp_client, tmp_path)
    html = await (await ui.client.get("/ui/invoices")).text()
    this_month = month_of(utcnow())
    assert OLD_MONTH in html and this_month in html
    assert "$1.25" in html and "$0.50" in html
    assert "$99" not in html
    assert html.index(this_month) < html.index(OLD_MONTH)  # newest first
    assert f'href="/ui/invoices/{OLD_MONTH}.csv"' in html


async def test_the_invoices_json_matches_the_billing_module(aiohttp_client, tmp_path):
    ui, _ = await with_invoices(aiohttp_client, tmp_path)
    data = (await (await ui.client.get("/ui/api/invoices")).json())["data"]
    by_month = {d["month"]: d for d in data}
    assert by_month[OLD_MONTH]["status"] == "closed"
    assert by_month[OLD_MONTH]["cost_usd"] == "1.25"
    assert by_month[month_of(utcnow())]["status"] == "open"
    assert by_month[OLD_MONTH]["csv"] == f"/ui/invoices/{OLD_MONTH}.csv"


async def test_a_months_csv_is_the_billing_modules_csv(aiohttp_client, tmp_path):
    ui, person = await with_invoices(aiohttp_client, tmp_path)
    response = await ui.client.get(f"/ui/invoices/{OLD_MONTH}.csv")
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert f'filename="onyproxy-invoice-{OLD_MONTH}.csv"' in \
        response.headers["Content-Disposition"]
    text = await response.text()
    assert text == invoices_csv(await invoices(ui.gw.store, OLD_MONTH, person.account.id))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["model"], r["cost_usd"]) for r in rows] == [
        ("gpt-4o", "1.00"), ("claude-sonnet", "0.25"), ("TOTAL", "1.25")]
    assert {r["account_id"] for r in rows} == {person.account.id}


async def test_months_without_an_invoice_or_of_others_are_not_found(aiohttp_client, tmp_path):
    ui, _ = await with_invoices(aiohttp_client, tmp_path)
    assert (await ui.client.get("/ui/invoices/2024-01.csv")).status == 404
    assert (await ui.client.get("/ui/invoices/not-a-month.csv")).status == 404


async def test_invoices_need_a_session(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    response = await ui.client.get(f"/ui/invoices/{OLD_MONTH}.csv", allow_redirects=False)
    assert response.status == 303
    assert (await ui.client.get("/ui/api/invoices")).status == 401
