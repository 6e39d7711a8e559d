"""API keys: generation, peppered hashing, and the create / rotate / revoke rules.

A key secret is ``ony-`` followed by 40 URL-safe characters (240 random bits from
:mod:`secrets`). It is shown once, when created, and never stored: the store keeps its
HMAC-SHA256 under the server's pepper (``security.key_pepper``) and a short display prefix.
Lookups hash the presented secret and find the record by hash; :func:`verify_key` compares in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from onyproxy.accounts import ValidationError, normalize_budget, normalize_regions
from onyproxy.key_bounds import bound_by
from onyproxy.storage.base import Account, ApiKey, NotFoundError, Store, new_id, to_utc, utcnow

if TYPE_CHECKING:
    from onyproxy.gateway import Gateway

__all__ = [
    "KEY_PREFIX",
    "IssuedKey",
    "create_key",
    "display_prefix",
    "find_usable_key",
    "forget_cached_keys",
    "generate_secret",
    "hash_key",
    "key_is_usable",
    "key_opens",
    "looks_like_key",
    "reinstate_key",
    "revoke_created_by",
    "revoke_key",
    "rotate_key",
    "verify_key",
]

KEY_PREFIX = "ony-"
SECRET_BYTES = 30  # 30 random bytes are exactly 40 URL-safe base64 characters
SECRET_CHARS = 40
DISPLAY_CHARS = 8
MAX_KEY_NAME = 100
_SECRET_SHAPE = re.compile(rf"^{re.escape(KEY_PREFIX)}[A-Za-z0-9_-]{{{SECRET_CHARS}}}$")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: the secret (shown to its owner once, never stored) and the record."""

    secret: str = field(repr=False)
    record: ApiKey


def generate_secret() -> str:
    """A new key secret: ``ony-`` and 40 URL-safe random characters."""
    return KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def looks_like_key(value: str) -> bool:
    """True when ``value`` has the shape of an onyproxy key (a cheap check before hashing)."""
    return bool(_SECRET_SHAPE.match(value))


def _pepper_bytes(pepper: str | bytes) -> bytes:
    raw = pepper.encode() if isinstance(pepper, str) else bytes(pepper)
    if not raw:
        raise ValueError("the key pepper must not be empty (set security.key_pepper)")
    return raw


def hash_key(secret: str, pepper: str | bytes) -> str:
    """HMAC-SHA256 of the secret keyed with the pepper, as 64 hex characters."""
    return hmac.new(_pepper_bytes(pepper), secret.encode(), hashlib.sha256).hexdigest()


def verify_key(secret: str, pepper: str | bytes, expected_hash: str) -> bool:
    """True when ``secret`` hashes to ``expected_hash``; the comparison is constant-time."""
    return hmac.compare_digest(hash_key(secret, pepper), expected_hash)


def display_prefix(secret: str) -> str:
    """What may be shown of a key: ``ony-`` and its first 8 characters (48 of 240 bits)."""
    return secret[: len(KEY_PREFIX) + DISPLAY_CHARS]


def key_is_usable(key: ApiKey, now: datetime | None = None) -> bool:
    """True when the key is neither revoked, suspended nor expired at ``now``."""
    if key.revoked or key.suspended_at is not None:
        return False
    return key.expires_at is None or key.expires_at > (now or utcnow())


async def find_usable_key(store: Store, secret: str,
                          pepper: str | bytes) -> tuple[ApiKey, Account] | None:
    """The key ``secret`` opens and its account, or ``None`` unless the key is usable and the
    account active (the sign-in check shared by the admin API and the dashboard)."""
    if not looks_like_key(secret):
        return None
    key_hash = hash_key(secret, pepper)
    key = await store.get_key_by_hash(key_hash)
    if key is None or not hmac.compare_digest(key.hash, key_hash) or not key_is_usable(key):
        return None
    account = await store.get_account(key.account_id)
    return (key, account) if key_opens(key, account, key_hash) else None


def key_opens(key: ApiKey | None, account: Account | None, key_hash: str) -> bool:
    """The one rule for letting a key in: found by ``key_hash`` (compared again in constant
    time, whatever the store's index did), usable (not revoked, expired or suspended), and its
    account active. Shared by the auth plugin, the admin API and the dashboard."""
    return (key is not None and account is not None and account.status == "active"
            and hmac.compare_digest(key.hash, key_hash) and key_is_usable(key))


def forget_cached_keys(gateway: Gateway) -> None:
    """Let this worker's auth plugin see a change of keys or accounts at once (other workers
    see it within the plugin's ``cache_ttl_s``). Duck-typed: the core imports no plugin."""
    forget = getattr(gateway.pipeline.get("auth"), "forget_keys", None)
    if forget is not None:
        forget()


def _limit(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(name, "must be a whole number")
    if value < 1:
        raise ValidationError(name, "must be at least 1 (leave it unset for the default)")
    return value


def _models(value: Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ValidationError("models", "must be a list of model names")
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ValidationError("models", "each model name must be a non-empty string")
        if item.strip() not in names:
            names.append(item.strip())
    if not names:
        raise ValidationError("models", "give at least one model, or leave it unset for all")
    return names


def _flag(name: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(name, "must be true or false")
    return value


def _name(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("name", "is required")
    name = " ".join(value.split())
    if len(name) > MAX_KEY_NAME:
        raise ValidationError("name", f"is longer than {MAX_KEY_NAME} characters")
    return name


def _expiry(value: datetime | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError("expires_at", "must be a date and time with a timezone")
    expires = to_utc(value)
    if expires <= now:
        raise ValidationError("expires_at", "is in the past")
    return expires


async def create_key(
    store: Store,
    account_id: str,
    *,
    pepper: str | bytes,
    name: str = "default",
    rpm: int | None = None,
    tpm: int | None = None,
    concurrent: int | None = None,
    budget_usd: Decimal | str | int | float | None = None,
    models: Iterable[str] | None = None,
    expires_at: datetime | None = None,
    regions: str | list[str] | None = None,
    owner: bool = False,
    creator: ApiKey | None = None,
) -> IssuedKey:
    """Issue a key for an account; the secret is in the result and nowhere else.

    Limits left ``None`` fall back to the gateway's defaults, or with a ``creator`` (the key
    whose dashboard session asks) to the creator's limits, which the new key may not exceed
    (:func:`onyproxy.key_bounds.bound_by`). ``owner`` keys may manage the account in the
    dashboard. An unknown account raises :class:`NotFoundError`, a deleted one
    :class:`ValidationError` on ``account_id``.
    """
    now = utcnow()
    record = ApiKey(
        id=new_id("key"), account_id=account_id, name=_name(name), prefix="", hash="",
        created_at=now, expires_at=_expiry(expires_at, now), rpm=_limit("rpm", rpm),
        tpm=_limit("tpm", tpm), concurrent=_limit("concurrent", concurrent),
        budget_usd=normalize_budget(budget_usd), models=_models(models),
        regions=normalize_regions(regions), owner=_flag("owner", owner),
    )
    if creator is not None:
        if creator.account_id != account_id:
            raise ValidationError("account_id", "a key can only create keys of its own account")
        record = bound_by(record, creator)
    _pepper_bytes(pepper)
    account = await store.get_account(account_id)
    if account is None:
        raise NotFoundError("account", account_id)
    if account.status == "deleted":
        raise ValidationError("account_id", "the account is deleted")
    return await _issue(store, record, pepper)


async def _issue(store: Store, record: ApiKey, pepper: str | bytes) -> IssuedKey:
    secret = generate_secret()
    record.prefix = display_prefix(secret)
    record.hash = hash_key(secret, pepper)
    return IssuedKey(secret=secret, record=await store.create_key(record))


async def rotate_key(store: Store, key_id: str, *, pepper: str | bytes) -> IssuedKey:
    """Replace a key: a new secret with the same name, limits, models, expiry, owner flag and
    creator; the old key is revoked once the new one is stored."""
    _pepper_bytes(pepper)
    old = await store.get_key(key_id)
    if old is None:
        raise NotFoundError("key", key_id)
    if old.revoked:
        raise ValidationError("key_id", "the key is revoked; create a new key instead")
    if old.suspended:
        # A new secret would carry the same settings but not the suspension: lifting it is an
        # admin's decision (reinstate), not a side effect of rotation.
        raise ValidationError("key_id", "the key is suspended; reinstate it first, or revoke "
                                        "it and create a new key")
    if not key_is_usable(old):
        raise ValidationError("key_id", "the key has expired; create a new key instead")
    record = ApiKey(
        id=new_id("key"), account_id=old.account_id, name=old.name, prefix="", hash="",
        created_at=utcnow(), expires_at=old.expires_at, rpm=old.rpm, tpm=old.tpm,
        concurrent=old.concurrent, budget_usd=old.budget_usd,
        models=list(old.models) if old.models is not None else None,
        regions=list(old.regions) if old.regions is not None else None,
        owner=old.owner, created_by=old.created_by,
    )
    issued = await _issue(store, record, pepper)
    await store.revoke_key(key_id)
    return issued


async def reinstate_key(store: Store, key_id: str) -> ApiKey:
    """Lift a key's suspension (idempotent); a revoked or expired key stays unusable. An
    unknown key raises :class:`NotFoundError`."""
    return await store.reinstate_key(key_id)


async def revoke_key(store: Store, key_id: str) -> ApiKey:
    """Revoke a key for good (idempotent); an unknown key raises :class:`NotFoundError`.
    Callers then revoke what it created: :func:`revoke_created_by`."""
    return await store.revoke_key(key_id)


async def revoke_created_by(store: Store, key: ApiKey) -> list[ApiKey]:
    """Revoke the keys created in ``key``'s dashboard sessions, and theirs, that are not
    revoked yet; the ones this call revoked (each to be audited by the caller). A key someone
    took over cannot leave keys behind that outlive its revocation."""
    keys = await store.list_keys(key.account_id)
    revoked: list[ApiKey] = []
    parents = {key.id}
    while children := [k for k in keys if k.created_by in parents and not k.revoked
                       and k.id not in parents]:
        for child in children:
            revoked.append(await store.revoke_key(child.id))
            child.revoked = True
        parents |= {c.id for c in children}
    return revoked
