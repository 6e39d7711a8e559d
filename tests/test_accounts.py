"""Account rules: errors name the field, emails are unique, corporate billing needs a company."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from onyproxy.accounts import (
    ConflictError,
    NotFoundError,
    ValidationError,
    create_account,
    get_account,
    new_account,
    normalize_email,
    normalize_phone,
    set_account_status,
    split_name,
    update_account,
)
from onyproxy.storage import BillingInfo, Store, open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path}/onyproxy.db")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.mark.parametrize("raw, expected", [
    ("Ada@Example.COM", "ada@example.com"),
    ("  ada.lovelace+ai@mail.example.co.uk ", "ada.lovelace+ai@mail.example.co.uk"),
    ("o'brien@example.ie", "o'brien@example.ie"),
])
def test_valid_emails_are_trimmed_and_lower_cased(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize("raw", [
    "", "   ", "ada", "ada@", "@example.com", "ada@example", "ada@@example.com",
    "ada lovelace@example.com", "ada@exa_mple.com", "ada..x@example.com", ".ada@example.com",
    "ada@-example.com", "a" * 65 + "@example.com", "ada@" + "x" * 250 + ".com",
])
def test_invalid_emails_are_rejected_naming_the_field(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_email(raw)
    assert caught.value.field == "email"


@pytest.mark.parametrize("raw, expected", [
    ("+905321234567", "+905321234567"),
    ("+90 (532) 123-45-67", "+905321234567"),
    ("0044 20 7946 0958", "+442079460958"),
    ("+1.415.555.2671", "+14155552671"),
    (None, None),
    ("  ", None),
])
def test_phones_are_normalised_to_e164(raw: str | None, expected: str | None) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", [
    "05321234567", "+0532123456", "+12345", "+1234567890123456", "+90 532 ABC 4567", "phone",
])
def test_invalid_phones_are_rejected_naming_the_field(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_phone(raw)
    assert caught.value.field == "phone"


@pytest.mark.parametrize("name, expected", [
    ("Ada Lovelace", ("Ada", "Lovelace")),
    ("  Ayşe   Nur Demir ", ("Ayşe Nur", "Demir")),
    ("Prince", ("Prince", "")),
])
def test_a_single_name_splits_at_the_last_word(name: str, expected: tuple[str, str]) -> None:
    assert split_name(name) == expected


def test_new_account_accepts_name_or_first_and_last_name() -> None:
    by_name = new_account(email="a@example.com", name="Ada King Lovelace")
    assert (by_name.first_name, by_name.last_name) == ("Ada King", "Lovelace")
    by_parts = new_account(email="a@example.com", first_name="Ada", last_name="Lovelace")
    assert (by_parts.first_name, by_parts.last_name, by_parts.name) == (
        "Ada", "Lovelace", "Ada Lovelace")
    assert by_parts.id.startswith("acc_") and by_parts.role == "user"
    assert by_parts.status == "active" and by_parts.created_at.tzinfo is not None


@pytest.mark.parametrize("fields, field", [
    ({"email": "a@example.com"}, "first_name"),
    ({"email": "a@example.com", "name": "   "}, "name"),
    ({"email": "a@example.com", "name": "A B", "first_name": "A"}, "name"),
    ({"email": "a@example.com", "first_name": "x" * 101}, "first_name"),
    ({"email": "a@example.com", "name": "Ada", "role": "root"}, "role"),
    ({"email": "a@example.com", "name": "Ada", "company": 42}, "company"),
    ({"email": "bad", "name": "Ada"}, "email"),
    ({"email": "a@example.com", "name": "Ada", "phone": "123"}, "phone"),
    ({"email": "a@example.com", "name": "Ada", "billing": {"tax_id": "1234567890"}}, "company"),
    ({"email": "a@example.com", "name": "Ada", "company": "Acme",
      "billing": {"tax_id": "!!"}}, "billing.tax_id"),
    ({"email": "a@example.com", "name": "Ada", "company": "Acme",
      "billing": {"iban": "TR00"}}, "billing.iban"),
])
def test_invalid_account_fields_are_named(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        new_account(**fields)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_corporate_account_keeps_normalised_billing_info() -> None:
    made = new_account(email="billing@acme.example", name="Ada Lovelace", company=" Acme  A.Ş. ",
                       billing={"tax_id": "de 123456789", "address": " Moda Cad. 1 \n Istanbul "})
    assert made.company == "Acme A.Ş."
    assert made.billing == BillingInfo(tax_id="DE 123456789", address="Moda Cad. 1\nIstanbul")


async def test_duplicate_email_is_a_conflict_even_in_another_case(store: Store) -> None:
    await create_account(store, email="ada@example.com", name="Ada Lovelace")
    with pytest.raises(ConflictError) as caught:
        await create_account(store, email="ADA@example.com", name="Other Ada")
    assert caught.value.field == "email"
    assert "ada@example.com" in str(caught.value)


async def test_get_account_by_id_or_email(store: Store) -> None:
    made = await create_account(store, email="ada@example.com", name="Ada Lovelace")
    assert await get_account(store, made.id) == made
    assert await get_account(store, " Ada@Example.com") == made
    with pytest.raises(NotFoundError):
        await get_account(store, "nobody@example.com")


async def test_update_validates_and_keeps_untouched_fields(store: Store) -> None:
    made = await create_account(store, email="ada@example.com", first_name="Ada",
                                last_name="Lovelace", phone="+905321234567")
    updated = await update_account(store, made.id, last_name="King", phone="+44 20 7946 0958")
    assert (updated.first_name, updated.last_name, updated.phone) == (
        "Ada", "King", "+442079460958")
    renamed = await update_account(store, made.id, name="Augusta Ada King")
    assert (renamed.first_name, renamed.last_name) == ("Augusta Ada", "King")
    with pytest.raises(ValidationError) as caught:
        await update_account(store, made.id, phone="not a phone")
    assert caught.value.field == "phone"
    with pytest.raises(ValidationError) as caught:
        await update_account(store, made.id, status="deleted")
    assert caught.value.field == "status"


async def test_update_to_a_taken_email_is_a_conflict(store: Store) -> None:
    await create_account(store, email="ada@example.com", name="Ada Lovelace")
    other = await create_account(store, email="grace@example.com", name="Grace Hopper")
    with pytest.raises(ConflictError):
        await update_account(store, other.id, email="Ada@Example.com")
    same = await update_account(store, other.id, email="GRACE@example.com")
    assert same.email == "grace@example.com"


async def test_billing_requires_a_company_also_on_update(store: Store) -> None:
    made = await create_account(store, email="ada@example.com", name="Ada Lovelace")
    with pytest.raises(ValidationError) as caught:
        await update_account(store, made.id, billing={"tax_id": "1234567890"})
    assert caught.value.field == "company"
    corporate = await update_account(store, made.id, company="Acme",
                                     billing={"tax_id": "1234567890", "address": "Istanbul"})
    assert corporate.billing == BillingInfo("1234567890", "Istanbul")


async def test_status_changes_and_soft_delete(store: Store) -> None:
    made = await create_account(store, email="ada@example.com", name="Ada Lovelace")
    assert (await set_account_status(store, made.id, "suspended")).status == "suspended"
    deleted = await set_account_status(store, made.id, "deleted")
    assert deleted.status == "deleted" and deleted.deleted_at is not None
    with pytest.raises(ValidationError) as caught:
        await set_account_status(store, made.id, "banned")
    assert caught.value.field == "status"
