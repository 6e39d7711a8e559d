"""Accounts: the rules for who may hold keys, independent of the store that keeps them.

Input is validated and normalised here (email lower-cased, phone to E.164, a single ``name``
split into first and last name); the store only enforces uniqueness. Every rule that fails
raises :class:`ValidationError` naming the field, so the admin API and the CLI can point at it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from onyproxy.storage.base import (
    ACCOUNT_STATUSES,
    ACCOUNT_UPDATABLE,
    ROLES,
    Account,
    AccountStatus,
    BillingInfo,
    ConflictError,
    NotFoundError,
    Role,
    Store,
    new_id,
    utcnow,
)

__all__ = [
    "ConflictError",
    "NotFoundError",
    "ValidationError",
    "create_account",
    "get_account",
    "new_account",
    "normalize_budget",
    "normalize_email",
    "normalize_phone",
    "normalize_regions",
    "set_account_status",
    "split_name",
    "update_account",
]

MAX_NAME = 100
MAX_COMPANY = 200
MAX_ADDRESS = 500
# A practical address check (RFC 5322 allows more, mail servers and people do not use it).
_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_TAX_ID = re.compile(r"^[A-Z0-9][A-Z0-9 ./-]{2,30}$")
_REGION = re.compile(r"^[a-z][a-z0-9-]{1,15}$")


class ValidationError(ValueError):
    """A field of the input breaks a rule; ``field`` names it, ``message`` says what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def normalize_email(value: str) -> str:
    """Trim and lower-case an email address, or raise :class:`ValidationError` on ``email``."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("email", "is required")
    email = value.strip().lower()
    local, _, domain = email.rpartition("@")
    if len(email) > 254 or len(local) > 64 or not _EMAIL.match(email):
        raise ValidationError("email", f"{value.strip()!r} is not a valid email address")
    return f"{local}@{domain}"


def normalize_phone(value: str | None) -> str | None:
    """An E.164 number (``+905321234567``); spaces, dots, dashes and brackets are dropped.

    ``None`` or an empty string means no phone. Anything else that is not ``+`` followed by 7
    to 15 digits raises :class:`ValidationError` on ``phone``.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValidationError("phone", "must be a string in E.164 form, e.g. +905321234567")
    phone = _PHONE_SEPARATORS.sub("", value)
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    if not _E164.match(phone):
        raise ValidationError(
            "phone", f"{value!r} is not an E.164 number (+ country code and number)"
        )
    return phone


def normalize_budget(value: Decimal | str | int | float | None) -> Decimal | None:
    """A monthly budget in USD (of a key or an account) as an exact Decimal; ``None`` (or an
    empty string): no budget."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValidationError("budget_usd", "must be an amount in USD, e.g. '25.00'")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError("budget_usd", "must be a finite amount")
        value = repr(value)  # the shortest decimal that round-trips, not the binary expansion
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError("budget_usd", f"{value!r} is not an amount in USD") from None
    if not amount.is_finite() or amount < 0:
        raise ValidationError("budget_usd", "must be a finite amount of at least 0")
    return amount


def normalize_regions(value: str | list[str] | None) -> list[str] | None:
    """Provider regions requests may go to (``"tr,eu"`` or a list), lower-cased, in order.

    ``None`` or empty means any region. Raises :class:`ValidationError` on ``regions``.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValidationError("regions", "must be a list of region codes, e.g. [\"tr\", \"eu\"]")
    regions: list[str] = []
    for item in items:
        code = item.strip().lower()
        if not _REGION.match(code):
            raise ValidationError("regions", f"{item!r} is not a region code (e.g. tr, eu, us)")
        if code not in regions:
            regions.append(code)
    return regions


def split_name(name: str) -> tuple[str, str]:
    """``"Ayşe Nur Demir"`` → ``("Ayşe Nur", "Demir")``: the last word is the last name."""
    words = name.split()
    if not words:
        raise ValidationError("name", "is required")
    if len(words) == 1:
        return words[0], ""
    return " ".join(words[:-1]), words[-1]


def _text(
    field: str, value: Any, *, limit: int, required: bool = False, multiline: bool = False
) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(field, "is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    lines = [" ".join(line.split()) for line in value.splitlines()]
    text = "\n".join(line for line in lines if line) if multiline else " ".join(lines).strip()
    if len(text) > limit:
        raise ValidationError(field, f"is longer than {limit} characters")
    if any(ord(ch) < 32 for ch in value if ch not in "\t\n\r"):
        raise ValidationError(field, "contains control characters")
    return text


def _billing(value: BillingInfo | Mapping[str, Any] | None) -> BillingInfo | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        unknown = set(value) - {"tax_id", "address"}
        if unknown:
            raise ValidationError(f"billing.{sorted(unknown)[0]}", "is not a billing field")
        value = BillingInfo(tax_id=value.get("tax_id"), address=value.get("address"))
    if not isinstance(value, BillingInfo):
        raise ValidationError("billing", "must be an object with tax_id and address")
    tax_id = _text("billing.tax_id", value.tax_id, limit=32)
    if tax_id is not None:
        tax_id = tax_id.upper()
        if not _TAX_ID.match(tax_id):
            raise ValidationError("billing.tax_id", f"{value.tax_id!r} is not a valid tax id")
    address = _text("billing.address", value.address, limit=MAX_ADDRESS, multiline=True)
    if tax_id is None and address is None:
        return None
    return BillingInfo(tax_id=tax_id, address=address)


def _role(value: str) -> Role:
    if value not in ROLES:
        raise ValidationError("role", f"must be one of {', '.join(ROLES)}, not {value!r}")
    return cast(Role, value)


def _names(
    first_name: str | None, last_name: str | None, name: str | None
) -> tuple[str, str]:
    if name is not None and (first_name is not None or last_name is not None):
        raise ValidationError("name", "give either name or first_name/last_name, not both")
    if name is not None:
        first, last = split_name(_text("name", name, limit=2 * MAX_NAME, required=True) or "")
    else:
        first = _text("first_name", first_name, limit=MAX_NAME, required=True) or ""
        last = _text("last_name", last_name, limit=MAX_NAME) or ""
    if len(first) > MAX_NAME or len(last) > MAX_NAME:
        raise ValidationError("name", f"first and last name must be at most {MAX_NAME} characters")
    return first, last


def _check_corporate(company: str | None, billing: BillingInfo | None) -> None:
    if billing is not None and company is None:
        raise ValidationError("company", "is required when billing information is given")


def new_account(
    *,
    email: str,
    first_name: str | None = None,
    last_name: str | None = None,
    name: str | None = None,
    phone: str | None = None,
    company: str | None = None,
    billing: BillingInfo | Mapping[str, Any] | None = None,
    role: str = "user",
    regions: str | list[str] | None = None,
    budget_usd: Decimal | str | int | float | None = None,
) -> Account:
    """A validated, normalised account record with a fresh id (not yet stored)."""
    first, last = _names(first_name, last_name, name)
    company_name = _text("company", company, limit=MAX_COMPANY)
    billing_info = _billing(billing)
    _check_corporate(company_name, billing_info)
    now = utcnow()
    return Account(
        id=new_id("acc"), email=normalize_email(email), first_name=first, last_name=last,
        phone=normalize_phone(phone), company=company_name, billing=billing_info,
        role=_role(role), created_at=now, updated_at=now, regions=normalize_regions(regions),
        budget_usd=normalize_budget(budget_usd),
    )


async def create_account(store: Store, **fields: Any) -> Account:
    """Validate and store a new account; a taken email raises :class:`ConflictError`.

    ``fields`` are those of :func:`new_account`.
    """
    account = new_account(**fields)
    if await store.get_account_by_email(account.email) is not None:
        raise ConflictError("email", f"an account with email {account.email} already exists")
    return await store.create_account(account)


async def get_account(store: Store, ident: str) -> Account:
    """The account with this id or email; :class:`NotFoundError` when there is none."""
    if "@" in ident:
        account = await store.get_account_by_email(ident.strip().lower())
    else:
        account = await store.get_account(ident)
    if account is None:
        raise NotFoundError("account", ident)
    return account


async def update_account(store: Store, account_id: str, **changes: Any) -> Account:
    """Validate and apply changes to an account (``name`` sets first and last name).

    ``None`` clears an optional field (phone, company, billing). A taken email raises
    :class:`ConflictError`; an unknown account :class:`NotFoundError`.
    """
    current = await store.get_account(account_id)
    if current is None:
        raise NotFoundError("account", account_id)
    unknown = set(changes) - ACCOUNT_UPDATABLE - {"name"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "cannot be changed")
    values: dict[str, Any] = {}
    if {"name", "first_name", "last_name"} & set(changes):
        first, last = _names(
            changes.get("first_name", None if "name" in changes else current.first_name),
            changes.get("last_name", None if "name" in changes else current.last_name),
            changes.get("name"),
        )
        values.update(first_name=first, last_name=last)
    if "email" in changes:
        values["email"] = normalize_email(changes["email"])
        other = await store.get_account_by_email(values["email"])
        if other is not None and other.id != account_id:
            raise ConflictError("email", f"an account with email {values['email']} already exists")
    if "phone" in changes:
        values["phone"] = normalize_phone(changes["phone"])
    if "company" in changes:
        values["company"] = _text("company", changes["company"], limit=MAX_COMPANY)
    if "billing" in changes:
        values["billing"] = _billing(changes["billing"])
    if "role" in changes:
        values["role"] = _role(changes["role"])
    if "regions" in changes:
        values["regions"] = normalize_regions(changes["regions"])
    if "budget_usd" in changes:
        values["budget_usd"] = normalize_budget(changes["budget_usd"])
    _check_corporate(
        values.get("company", current.company), values.get("billing", current.billing)
    )
    if not values:
        return current
    return await store.update_account(account_id, values)


async def set_account_status(store: Store, account_id: str, status: str) -> Account:
    """Activate, suspend or (soft-)delete an account; ``deleted`` stamps ``deleted_at``."""
    if status not in ACCOUNT_STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(ACCOUNT_STATUSES)}")
    return await store.set_account_status(account_id, cast(AccountStatus, status))
