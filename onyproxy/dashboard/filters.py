"""Jinja filters for numbers, money and times as the pages show them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

DASH = "\u2013"  # an en dash for "no value"


def number(value: int | float | Decimal | None) -> str:
    """``1234567`` → ``1,234,567``."""
    return DASH if value is None else f"{value:,}"


def usd(value: Decimal | float | str | None, places: int = 4) -> str:
    """USD with a fixed number of decimals: small per-request costs stay visible."""
    if value is None or value == "":
        return DASH
    return f"${Decimal(value):,.{places}f}"


def when(value: datetime | None) -> str:
    """``2026-01-31 09:30 UTC``."""
    if value is None:
        return DASH
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


FILTERS = {"number": number, "usd": usd, "when": when}
