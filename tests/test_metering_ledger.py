"""The budget ledger on its own: reservations, settling, syncing with the store without
counting a cost twice for long, and the month rolling over."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from plugins.metering.budget import Ledger

KEY = ("key", "key_1")
ACCOUNT = ("account", "acc_1")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 31, 23, 59, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_scope_is_over_once_spend_and_reservations_reach_the_budget():
    ledger = Ledger()
    budgets = [(KEY, Decimal("1.00"))]
    held = ledger.reserve([KEY], Decimal("0.60"))
    assert ledger.over(budgets) is None  # 0.60 < 1.00: one more may start
    second = ledger.reserve([KEY], Decimal("0.60"))
    assert ledger.over(budgets) == KEY  # 1.20 reserved
    ledger.settle(held)
    ledger.settle(held)  # settling twice releases once
    assert ledger.reserved[KEY] == Decimal("0.60")
    ledger.charge([KEY], Decimal("0.45"), "r1")
    ledger.settle(second)
    assert ledger.spent(KEY) == Decimal("0.45") and ledger.over(budgets) is None


async def test_sync_takes_the_store_totals_without_counting_stored_costs_twice():
    ledger = Ledger()
    ledger.charge([KEY, ACCOUNT], Decimal("0.3"), "r1")
    ledger.charge([KEY], Decimal("0.2"), "r2")
    ledger.stored(["r1"])  # r1 reached the store, r2 not yet

    async def store_totals(since: datetime) -> dict:
        assert since == datetime(since.year, since.month, 1, tzinfo=UTC)
        return {KEY: Decimal("5.3"), ACCOUNT: Decimal("9.3")}  # r1 included, plus others

    await ledger.sync(store_totals)
    assert ledger.synced
    assert ledger.spent(KEY) == Decimal("5.5")  # 5.3 from the store + r2 still in the spool
    assert ledger.spent(ACCOUNT) == Decimal("9.3")
    ledger.stored(["r2"])

    async def later(since: datetime) -> dict:
        return {KEY: Decimal("5.5"), ACCOUNT: Decimal("9.3")}

    await ledger.sync(later)
    assert ledger.spent(KEY) == Decimal("5.5")


async def test_a_new_month_starts_from_nothing_but_keeps_reservations():
    clock = Clock()
    ledger = Ledger(clock)
    ledger.charge([KEY], Decimal("3"), "r1")
    held = ledger.reserve([KEY], Decimal("1"))
    clock.now = datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)
    assert ledger.spent(KEY) == 0 and ledger.month == "2026-04" and not ledger.synced
    assert ledger.over([(KEY, Decimal("1"))]) == KEY  # the call in flight still holds 1
    ledger.settle(held)
    assert ledger.over([(KEY, Decimal("1"))]) is None
