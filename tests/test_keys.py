"""API keys: secrets shown once, stored only as a peppered HMAC; create, rotate, revoke."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from onyproxy.accounts import NotFoundError, ValidationError, create_account, set_account_status
from onyproxy.keys import (
    KEY_PREFIX,
    create_key,
    display_prefix,
    generate_secret,
    hash_key,
    key_is_usable,
    looks_like_key,
    revoke_created_by,
    revoke_key,
    rotate_key,
    verify_key,
)
from onyproxy.storage import Account, ApiKey, Store, open_store

PEPPER = "test-pepper-0123456789abcdef"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "onyproxy.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{db_path}")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def owner(store: Store) -> Account:
    return await create_account(store, email="ada@example.com", name="Ada Lovelace")


def test_secrets_have_the_prefix_40_url_safe_chars_and_differ() -> None:
    made = {generate_secret() for _ in range(100)}
    assert len(made) == 100
    for secret in made:
        assert secret.startswith(KEY_PREFIX) and len(secret) == len(KEY_PREFIX) + 40
        assert looks_like_key(secret)
    assert not looks_like_key("sk-" + "a" * 40)
    assert not looks_like_key(KEY_PREFIX + "a" * 39)


def test_hash_is_hmac_sha256_with_the_pepper() -> None:
    secret = generate_secret()
    expected = hmac.new(PEPPER.encode(), secret.encode(), hashlib.sha256).hexdigest()
    assert hash_key(secret, PEPPER) == expected
    assert hash_key(secret, PEPPER.encode()) == expected
    assert hash_key(secret, "another-pepper") != expected
    assert hashlib.sha256(secret.encode()).hexdigest() != expected


def test_empty_pepper_is_refused() -> None:
    with pytest.raises(ValueError, match="pepper"):
        hash_key(generate_secret(), "")


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = generate_secret()
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify_key(secret, PEPPER, hash_key(secret, PEPPER)) is True
    assert verify_key(generate_secret(), PEPPER, hash_key(secret, PEPPER)) is False
    assert len(calls) == 2


def test_display_prefix_is_the_key_prefix_and_8_characters() -> None:
    secret = generate_secret()
    assert display_prefix(secret) == secret[:12] and display_prefix(secret).startswith("ony-")


async def test_created_key_is_returned_once_and_stored_only_as_hash(
    store: Store, owner: Account, db_path: Path
) -> None:
    issued = await create_key(store, owner.id, pepper=PEPPER, name="ci")
    record = issued.record
    assert looks_like_key(issued.secret) and issued.secret not in repr(issued)
    assert record.hash == hash_key(issued.secret, PEPPER)
    assert record.prefix == display_prefix(issued.secret)
    assert issued.secret not in repr(record)
    assert await store.get_key_by_hash(hash_key(issued.secret, PEPPER)) == record
    await store.close()  # flush; then no file of the database may contain the secret
    tail = issued.secret[len(record.prefix):].encode()
    files = list(db_path.parent.glob("onyproxy.db*"))
    assert any(record.hash.encode() in path.read_bytes() for path in files)  # the right files
    for path in files:
        content = path.read_bytes()
        assert issued.secret.encode() not in content and tail not in content, path.name


async def test_key_limits_budget_models_and_expiry_are_kept(store: Store, owner: Account) -> None:
    expires = datetime.now(UTC) + timedelta(days=30)
    issued = await create_key(store, owner.id, pepper=PEPPER, name=" team  bot ", rpm=60,
                              tpm=100_000, concurrent=5, budget_usd="25.50",
                              models=["gpt-4o", "claude-sonnet", "gpt-4o"], expires_at=expires)
    stored = await store.get_key(issued.record.id)
    assert stored is not None and stored == issued.record
    assert (stored.name, stored.rpm, stored.tpm, stored.concurrent) == ("team bot", 60, 100_000, 5)
    assert stored.budget_usd == Decimal("25.50") and isinstance(stored.budget_usd, Decimal)
    assert stored.models == ["gpt-4o", "claude-sonnet"]
    assert stored.expires_at is not None and abs(stored.expires_at - expires) < timedelta(
        milliseconds=1)


@pytest.mark.parametrize("budget, expected", [
    (Decimal("10"), Decimal("10")), (7, Decimal("7")), ("0.10", Decimal("0.10")),
    (0.1, Decimal("0.1")),
])
async def test_budget_is_a_decimal_whatever_it_came_as(
    store: Store, owner: Account, budget: object, expected: Decimal
) -> None:
    issued = await create_key(store, owner.id, pepper=PEPPER, budget_usd=budget)  # type: ignore[arg-type]
    assert issued.record.budget_usd == expected


@pytest.mark.parametrize("options, field", [
    ({"rpm": 0}, "rpm"), ({"tpm": -5}, "tpm"), ({"concurrent": 1.5}, "concurrent"),
    ({"rpm": True}, "rpm"), ({"budget_usd": "ten"}, "budget_usd"),
    ({"budget_usd": "-1"}, "budget_usd"), ({"budget_usd": float("nan")}, "budget_usd"),
    ({"budget_usd": "Infinity"}, "budget_usd"), ({"models": []}, "models"),
    ({"models": "gpt-4o"}, "models"), ({"models": ["gpt-4o", ""]}, "models"),
    ({"name": "  "}, "name"), ({"name": "x" * 101}, "name"),
    ({"expires_at": datetime(2030, 1, 1)}, "expires_at"),
    ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, "expires_at"),
])
async def test_invalid_key_options_are_named(
    store: Store, owner: Account, options: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await create_key(store, owner.id, pepper=PEPPER, **options)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert await store.list_keys(owner.id) == []


async def test_key_for_unknown_or_deleted_account_is_refused(store: Store, owner: Account) -> None:
    with pytest.raises(NotFoundError):
        await create_key(store, "acc_missing", pepper=PEPPER)
    await set_account_status(store, owner.id, "deleted")
    with pytest.raises(ValidationError) as caught:
        await create_key(store, owner.id, pepper=PEPPER)
    assert caught.value.field == "account_id"


async def test_revoked_key_is_not_usable_and_revoking_is_idempotent(
    store: Store, owner: Account
) -> None:
    issued = await create_key(store, owner.id, pepper=PEPPER)
    assert key_is_usable(issued.record)
    revoked = await revoke_key(store, issued.record.id)
    assert revoked.revoked and revoked.revoked_at is not None and not key_is_usable(revoked)
    assert (await revoke_key(store, issued.record.id)).revoked_at == revoked.revoked_at
    with pytest.raises(NotFoundError):
        await revoke_key(store, "key_missing")


def test_expired_key_is_not_usable() -> None:
    past = ApiKey(id="key_1", account_id="acc_1", name="n", prefix="ony-x", hash="h",
                  expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert not key_is_usable(past)
    assert key_is_usable(past, now=datetime(2019, 12, 31, tzinfo=UTC))


async def test_rotate_issues_a_new_secret_with_the_same_settings_and_revokes_the_old(
    store: Store, owner: Account
) -> None:
    old = await create_key(store, owner.id, pepper=PEPPER, name="prod", rpm=60,
                           budget_usd="5", models=["gpt-4o"])
    new = await rotate_key(store, old.record.id, pepper=PEPPER)
    assert new.secret != old.secret and new.record.id != old.record.id
    assert (new.record.name, new.record.rpm, new.record.budget_usd, new.record.models) == (
        "prod", 60, Decimal("5"), ["gpt-4o"])
    assert new.record.account_id == owner.id and not new.record.revoked
    stored_old = await store.get_key(old.record.id)
    assert stored_old is not None and stored_old.revoked
    assert await store.get_key_by_hash(hash_key(new.secret, PEPPER)) == new.record
    with pytest.raises(ValidationError) as caught:
        await rotate_key(store, old.record.id, pepper=PEPPER)
    assert caught.value.field == "key_id"
    with pytest.raises(NotFoundError):
        await rotate_key(store, "key_missing", pepper=PEPPER)


# keys created from a dashboard session ---------------------------------------------------
@pytest.fixture
async def narrow(store: Store, owner: Account) -> ApiKey:
    """An owner key with every limit: what a session opened with it may hand on."""
    issued = await create_key(store, owner.id, pepper=PEPPER, name="narrow", owner=True,
                              rpm=10, tpm=1000, concurrent=2, budget_usd="5.00",
                              models=["mock-small", "mock-large"], regions="tr,eu",
                              expires_at=datetime.now(UTC) + timedelta(days=30))
    return issued.record


async def test_a_key_created_by_another_takes_its_limits_where_it_sets_none(
        store: Store, owner: Account, narrow: ApiKey) -> None:
    child = (await create_key(store, owner.id, pepper=PEPPER, name="ci", creator=narrow,
                              expires_at=narrow.expires_at)).record
    assert (child.rpm, child.tpm, child.concurrent, child.budget_usd) == (
        10, 1000, 2, Decimal("5.00"))
    assert (child.models, child.regions) == (["mock-small", "mock-large"], ["tr", "eu"])
    assert (child.created_by, child.owner) == (narrow.id, False)
    assert await store.get_key(child.id) == child


async def test_a_key_created_by_another_may_narrow_its_limits(
        store: Store, owner: Account, narrow: ApiKey) -> None:
    soon = narrow.expires_at - timedelta(days=1)
    child = (await create_key(store, owner.id, pepper=PEPPER, creator=narrow, rpm=5,
                              budget_usd="1", models=["mock-small"], regions=["tr"],
                              expires_at=soon)).record
    assert (child.rpm, child.budget_usd, child.models, child.regions, child.expires_at) == (
        5, Decimal("1"), ["mock-small"], ["tr"], soon)


@pytest.mark.parametrize(("limits", "field"), [
    ({"rpm": 11}, "rpm"), ({"tpm": 1001}, "tpm"), ({"concurrent": 3}, "concurrent"),
    ({"budget_usd": "5.01"}, "budget_usd"), ({"models": ["mock-small", "gpt-4o"]}, "models"),
    ({"regions": "tr,us"}, "regions")])
async def test_a_key_created_by_another_never_exceeds_its_limits(
        store: Store, owner: Account, narrow: ApiKey, limits: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        await create_key(store, owner.id, pepper=PEPPER, creator=narrow,
                         expires_at=narrow.expires_at, **limits)
    assert caught.value.field == field
    assert [k.id for k in await store.list_keys(owner.id)] == [narrow.id]


async def test_a_key_created_by_an_expiring_key_expires_no_later(
        store: Store, owner: Account, narrow: ApiKey) -> None:
    for expiry in (None, narrow.expires_at + timedelta(seconds=1)):
        with pytest.raises(ValidationError) as caught:
            await create_key(store, owner.id, pepper=PEPPER, creator=narrow, expires_at=expiry)
        assert caught.value.field == "expires_at"
    assert len(await store.list_keys(owner.id)) == 1


async def test_a_key_cannot_create_keys_for_another_account(
        store: Store, narrow: ApiKey) -> None:
    other = await create_account(store, email="bob@example.com", name="Bob")
    with pytest.raises(ValidationError):
        await create_key(store, other.id, pepper=PEPPER, creator=narrow,
                         expires_at=narrow.expires_at)


async def test_rotation_keeps_the_owner_flag_and_the_creator(
        store: Store, owner: Account, narrow: ApiKey) -> None:
    child = (await create_key(store, owner.id, pepper=PEPPER, creator=narrow,
                              expires_at=narrow.expires_at)).record
    assert (await rotate_key(store, narrow.id, pepper=PEPPER)).record.owner is True
    rotated = (await rotate_key(store, child.id, pepper=PEPPER)).record
    assert (rotated.owner, rotated.created_by) == (False, narrow.id)


async def test_revoking_a_key_revokes_the_keys_created_with_it_and_theirs(
        store: Store, owner: Account, narrow: ApiKey) -> None:
    later = narrow.expires_at
    child = (await create_key(store, owner.id, pepper=PEPPER, creator=narrow,
                              expires_at=later)).record
    grandchild = (await create_key(store, owner.id, pepper=PEPPER, creator=child,
                                   expires_at=later)).record
    unrelated = (await create_key(store, owner.id, pepper=PEPPER)).record
    revoked = await revoke_key(store, narrow.id)
    assert {k.id for k in await revoke_created_by(store, revoked)} == {child.id, grandchild.id}
    for made in (narrow, child, grandchild):
        assert (await store.get_key(made.id)).revoked
    assert not (await store.get_key(unrelated.id)).revoked
    assert await revoke_created_by(store, revoked) == []  # nothing left to revoke
