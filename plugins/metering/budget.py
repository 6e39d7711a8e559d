"""Monthly budgets per key and per account: reserve before the call, settle after it.

Spend of the current month (UTC) is kept in memory per scope (``("key", id)`` or
``("account", id)``), so checking a budget costs no database query:

    spent = base + local        reserved = estimates of calls in flight

``base`` is the month-to-date total read from the store (at start, at each month change and
every ``budget_sync_s``); ``local`` is what this process settled since that snapshot and the
store did not yet have when it was taken. A call is admitted while ``spent + reserved`` is
below the budget, and then reserves its estimate (input tokens and the output ceiling at the
dearest price of the model's targets). All of this happens between two awaits, so within one
process concurrent calls see each other's reservations: the budget can be exceeded only by
the last call admitted, by at most its own estimate (as long as real costs stay within their
estimates, which the estimate is built to ensure).

Several workers or gateways see each other's spend at the next sync. The overspend is then
bounded by what the other processes spend within one ``budget_sync_s``, plus one estimate per
process.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from onyproxy.single_flight import SingleFlight
from onyproxy.storage import StorageError

Scope = tuple[str, str]  # ("key" | "account", id)
ZERO = Decimal(0)


def month_of(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m")


def month_start(month: str) -> datetime:
    year, number = map(int, month.split("-"))
    return datetime(year, number, 1, tzinfo=UTC)


@dataclass
class Reservation:
    """What one admitted call holds until it settles."""

    scopes: list[Scope]
    amount: Decimal
    month: str
    settled: bool = False


class Ledger:
    """Month-to-date spend and reservations of every scope seen (see the module docstring)."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self.month = month_of(clock())
        self.synced = False  # base holds a snapshot of the store for this month
        self.base: dict[Scope, Decimal] = {}
        self.local: defaultdict[Scope, Decimal] = defaultdict(Decimal)
        self.reserved: defaultdict[Scope, Decimal] = defaultdict(Decimal)
        self._unstored: dict[str, tuple[list[Scope], Decimal]] = {}
        self._stored: list[tuple[list[Scope], Decimal]] = []

    def spent(self, scope: Scope) -> Decimal:
        self._roll()
        return self.base.get(scope, ZERO) + self.local[scope]

    def over(self, scopes: Iterable[tuple[Scope, Decimal]]) -> Scope | None:
        """The first scope whose budget is used up (spent and reserved), if any."""
        for scope, budget in scopes:
            if self.spent(scope) + self.reserved[scope] >= budget:
                return scope
        return None

    def reserve(self, scopes: list[Scope], amount: Decimal) -> Reservation:
        for scope in scopes:
            self.reserved[scope] += amount
        return Reservation(scopes, amount, self.month)

    def charge(self, scopes: list[Scope], cost: Decimal, request_id: str) -> None:
        """Count the real ``cost`` of the event ``request_id`` against ``scopes`` (before
        the event is spooled, so the flusher cannot report it stored first)."""
        if not (cost and scopes):
            return
        self._roll()
        for scope in scopes:
            self.local[scope] += cost
        self._unstored[request_id] = (scopes, cost)

    def settle(self, reservation: Reservation | None) -> None:
        """The call ended: release what it reserved (once)."""
        if reservation is None or reservation.settled:
            return
        reservation.settled = True
        for scope in reservation.scopes:
            self.reserved[scope] -= reservation.amount
            if not self.reserved[scope]:
                del self.reserved[scope]

    def stored(self, request_ids: Iterable[str]) -> None:
        """The flusher wrote these events to the store."""
        for request_id in request_ids:
            entry = self._unstored.pop(request_id, None)
            if entry is not None:
                self._stored.append(entry)

    async def sync(self, load: Callable[[datetime], Any]) -> None:
        """Replace ``base`` with the store's month-to-date totals (``await load(since)``
        returns ``{scope: Decimal}``). Costs stored before the query began are in the new
        base and leave ``local``; those stored while it ran stay counted twice until the
        next sync, which errs on the safe side."""
        self._roll()
        month, marker = self.month, len(self._stored)
        totals = await load(month_start(month))
        if month != self.month:
            return  # the month changed meanwhile: that snapshot is of the old one
        for scopes, cost in self._stored[:marker]:
            for scope in scopes:
                self.local[scope] -= cost
        del self._stored[:marker]
        self.base = dict(totals)
        self.synced = True

    def _roll(self) -> None:
        month = month_of(self._clock())
        if month != self.month:
            # A new month starts from nothing spent; reservations stay until their calls end.
            self.month, self.base, self.synced = month, {}, False
            self.local.clear()
            self._unstored.clear()
            self._stored.clear()


class AccountBudgets:
    """Accounts' budgets, read from the store at most once per ``ttl_s`` per account; the
    last known value is kept while the store is unreachable."""

    def __init__(self, store: Callable[[], Any], ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._known: dict[str, tuple[Decimal | None, float]] = {}
        self._loading: SingleFlight[str, Decimal | None] = SingleFlight()

    async def get(self, account_id: str) -> Decimal | None:
        """The account's monthly budget; raises ``StorageError`` when it was never known."""
        known = self._known.get(account_id)
        if known is not None and self._clock() < known[1]:
            return known[0]
        try:
            return await self._loading.run(account_id, lambda: self._load(account_id))
        except StorageError:
            if known is not None:
                return known[0]
            raise

    def forget(self) -> None:
        self._known.clear()

    async def _load(self, account_id: str) -> Decimal | None:
        account = await self._store().get_account(account_id)
        budget = account.budget_usd if account is not None else None
        self._known[account_id] = (budget, self._clock() + self._ttl_s)
        return budget
