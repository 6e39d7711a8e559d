"""``/admin/usage`` and ``/admin/invoices``: the CLI's reports through the admin API, behind
admin sign-in, with calls metered by a running gateway."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import jwt
import pytest

from onyproxy.accounts import create_account
from onyproxy.appkeys import GATEWAY
from onyproxy.keys import create_key
from onyproxy.storage import UsageEvent

PEPPER = "billing-admin-pepper-0123456789abcdef"
JWT_SECRET = "billing-admin-jwt-secret-0123456789abcdefghij"
PRICE = {"input": "1000", "output": "2000"}


def token() -> str:
    return jwt.encode({"sub": "ops@example.com", "role": "admin",
                       "exp": int(time.time()) + 300}, JWT_SECRET, algorithm="HS256")


@pytest.fixture
async def api(gateway):
    server = await gateway({
        "security": {"key_pepper": PEPPER, "jwt_secret": JWT_SECRET},
        "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small",
                                               "price": PRICE}]}},
        "pipeline": [{"name": "auth"}, {"name": "routing", "retries": 0},
                     {"name": "metering", "flush_interval_s": 0.05}]})
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as session:
        yield server.app[GATEWAY], session


async def admin(session: aiohttp.ClientSession, method: str, path: str,
                auth: bool = True) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {token()}"} if auth else {}
    async with session.request(method, path, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else \
            await resp.text()
        return resp.status, body


async def test_usage_of_metered_calls_through_the_admin_api(api):
    gw, session = api
    account = await create_account(gw.store, email="ada@example.com", name="Ada Lovelace")
    issued = await create_key(gw.store, account.id, pepper=PEPPER)
    chat = {"model": "mock-small", "messages": [{"role": "user", "content": "hi there"}]}
    for _ in range(3):
        async with session.post("/v1/chat/completions", json=chat,
                                headers={"authorization": f"Bearer {issued.secret}"}) as r:
            assert r.status == 200
    async with asyncio.timeout(10):
        while len(await gw.store.list_usage_events()) < 3:
            await asyncio.sleep(0.02)
    status, report = await admin(session, "GET", "/admin/usage?account=ada@example.com")
    assert status == 200
    ((row,),) = [report["rows"]]
    # mock: "hi there" is 2 prompt tokens, "echo: hi there" 4 completion tokens
    assert (row["model"], row["requests"], row["prompt_tokens"], row["completion_tokens"],
            Decimal(row["cost_usd"])) == ("mock-small", 3, 6, 12, Decimal("0.03"))
    status, by_key = await admin(session, "GET", f"/admin/usage?by=key&key={issued.record.id}")
    assert [r["key"] for r in by_key["rows"]] == [issued.record.id]
    assert (await admin(session, "GET", "/admin/usage?by=colour"))[0] == 400
    assert (await admin(session, "GET", "/admin/usage", auth=False))[0] == 401


async def test_invoices_list_show_csv_and_close(api):
    gw, session = api
    account = await create_account(gw.store, email="ada@example.com", name="Ada Lovelace")
    past = (datetime.now(UTC).replace(day=1) - timedelta(days=40)).replace(day=5)
    month = past.strftime("%Y-%m")
    await gw.store.insert_usage_events([
        UsageEvent(request_id=f"r{n}", account_id=account.id, key_id="key_1",
                   model="gpt-4o", provider="openai", input_tokens=10, output_tokens=5,
                   cost_usd=Decimal("0.125"), created_at=past) for n in range(4)])
    status, listed = await admin(session, "GET", f"/admin/invoices?month={month}")
    assert status == 200 and [(i["status"], i["cost_usd"]) for i in listed["data"]] == [
        ("open", "0.500")]
    status, closed = await admin(session, "POST", f"/admin/invoices/{month}/close")
    assert (status, closed) == (200, {"month": month, "records": 1})
    status, shown = await admin(session, "GET", f"/admin/invoices/{month}/{account.id}")
    assert (shown["status"], shown["lines"][0]["model"], shown["requests"]) == (
        "closed", "gpt-4o", 4)
    status, text = await admin(session, "GET", f"/admin/invoices?month={month}&format=csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["model"], r["cost_usd"]) for r in rows] == [("gpt-4o", "0.500"),
                                                           ("TOTAL", "0.500")]
    audit = await gw.store.list_audit(actor="jwt:ops@example.com")
    assert [(e.action, e.target) for e in audit] == [("billing.close", month)]
    assert (await admin(session, "GET", "/admin/invoices?month=2026-13"))[0] == 400
    assert (await admin(session, "GET", f"/admin/invoices/{month}/acc_nobody"))[0] == 404


async def test_an_account_budget_is_set_and_lifted_through_the_admin_api(api):
    _, session = api
    headers = {"authorization": f"Bearer {token()}"}
    async with session.post("/admin/accounts", headers=headers, json={
            "email": "corp@example.com", "name": "Corp Buyer", "budget_usd": "250"}) as resp:
        assert resp.status == 201 and (await resp.json())["budget_usd"] == "250"
    async with session.patch("/admin/accounts/corp@example.com", headers=headers,
                             json={"budget_usd": None}) as resp:
        assert (await resp.json())["budget_usd"] is None
    async with session.patch("/admin/accounts/corp@example.com", headers=headers,
                             json={"budget_usd": -1}) as resp:
        assert resp.status == 400 and (await resp.json())["error"]["param"] == "budget_usd"
