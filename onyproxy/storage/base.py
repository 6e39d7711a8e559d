"""The storage interface: record types, errors and the abstract :class:`Store`.

Every backend (SQLite, MongoDB) implements :class:`Store` and passes the same contract suite in
``tests/storage``. Records are plain dataclasses; times are timezone-aware UTC datetimes with
millisecond precision (what BSON keeps), money is :class:`~decimal.Decimal`, never float.

Nothing here may hold prompt or completion text, nor an API key secret: keys are stored only as
their HMAC (see :mod:`onyproxy.keys`).
"""

from __future__ import annotations

import abc
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from onyproxy.storage.privacy import PrivacyStore
from onyproxy.storage.security import SecurityStore

AccountStatus = Literal["active", "suspended", "deleted"]
Role = Literal["user", "admin"]

ACCOUNT_STATUSES: tuple[str, ...] = ("active", "suspended", "deleted")
ROLES: tuple[str, ...] = ("user", "admin")
#: Fields of an account that :meth:`Store.update_account` may change (status has its own call).
ACCOUNT_UPDATABLE: frozenset[str] = frozenset({
    "first_name", "last_name", "email", "phone", "company", "billing", "role", "budget_usd",
    "regions"})
#: What :meth:`Store.usage_totals` can group by: ``day`` is the UTC date ``YYYY-MM-DD``.
USAGE_DIMENSIONS: tuple[str, ...] = ("account", "key", "model", "provider", "day")


class StorageError(Exception):
    """The database cannot be opened, is unreachable, or refused an operation."""


#: What a :class:`ConflictError` says, by the field whose uniqueness a write would break.
CONFLICT_MESSAGES: dict[str, str] = {
    "email": "an account with this email already exists",
    "hash": "a key with this hash already exists",
    "id": "a record with this id already exists",
}


class ConflictError(Exception):
    """A write would break a uniqueness rule (duplicate email, duplicate key hash ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFoundError(LookupError):
    """The record an operation names does not exist."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


def utcnow() -> datetime:
    """The current time, UTC, truncated to milliseconds (the precision every backend keeps)."""
    return to_utc(datetime.now(UTC))


def to_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC with millisecond precision; naive datetimes are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: storage needs timezone-aware times")
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def new_id(prefix: str) -> str:
    """A short random identifier such as ``acc_3f9a1c0b7d2e4f51``."""
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass(slots=True)
class BillingInfo:
    """Invoice details of a corporate customer."""

    tax_id: str | None = None
    address: str | None = None


@dataclass(slots=True)
class Account:
    """A person or company that owns API keys."""

    id: str
    email: str
    first_name: str
    last_name: str = ""
    phone: str | None = None
    company: str | None = None
    billing: BillingInfo | None = None
    role: Role = "user"
    status: AccountStatus = "active"
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    deleted_at: datetime | None = None
    budget_usd: Decimal | None = None  # monthly, all the account's keys together
    regions: list[str] | None = None  # provider regions its requests may go to; None: any

    @property
    def name(self) -> str:
        """First and last name joined for display."""
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(slots=True)
class ApiKey:
    """An API key as stored: its HMAC and display prefix, never the secret itself."""

    id: str
    account_id: str
    name: str
    prefix: str
    hash: str
    created_at: datetime = field(default_factory=utcnow)
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    revoked: bool = False
    revoked_at: datetime | None = None
    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None
    budget_usd: Decimal | None = None
    models: list[str] | None = None
    regions: list[str] | None = None  # provider regions its requests may go to; None: any
    suspended_at: datetime | None = None  # stops it like revoked, but an admin can lift it
    suspended_by: str | None = None
    suspended_reason: str | None = None
    owner: bool = False  # its dashboard session may manage the account (keys, details, erasure)
    created_by: str | None = None  # the key whose dashboard session created this one

    @property
    def suspended(self) -> bool:
        return self.suspended_at is not None


@dataclass(slots=True)
class UsageEvent:
    """One metered exchange: who, which key, model, tokens, cost and timing. No content.

    ``model`` is the name the client asked for, ``provider``/``provider_model`` what served
    it (empty when no provider was reached). ``input_tokens`` include ``cached_tokens``,
    ``output_tokens`` include ``reasoning_tokens``. ``flags`` are words such as ``partial``,
    ``estimated``, ``unpriced``; ``billable`` is false for exchanges no provider charged for.
    ``request_id`` is unique: writing an event twice stores it once.
    """

    request_id: str
    account_id: str | None
    key_id: str | None
    model: str
    provider: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    status: int = 200
    latency_ms: int = 0
    ip: str | None = None
    user_agent: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    surface: str = ""
    provider_model: str = ""
    attempts: int = 0
    error_type: str | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    ttft_ms: int | None = None
    streamed: bool = False
    flags: list[str] = field(default_factory=list)
    billable: bool = True
    client_request_id: str | None = None  # the client's own x-request-id, when it sent one
    # Uses of provider-run tools billed per use ({"web_search": 3}); their price is in cost_usd.
    server_tool_uses: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class UsageTotal:
    """Usage events summed over one group of :meth:`Store.usage_totals`.

    ``group`` maps each dimension asked for to its value (``None`` for a missing account or
    key); ``requests`` counts every event, ``billed_requests`` the billable ones.
    """

    group: dict[str, str | None]
    requests: int = 0
    billed_requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)


@dataclass(slots=True)
class BillingLine:
    """One model's share of a monthly billing record."""

    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal = Decimal(0)


@dataclass(slots=True)
class BillingRecord:
    """Monthly totals of one account, kept for invoicing (``month`` is ``YYYY-MM``).

    ``lines`` break the totals down per client-facing model; ``closed_at`` is set once the
    month ended and the record was written as final.
    """

    account_id: str
    month: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    updated_at: datetime = field(default_factory=utcnow)
    cached_tokens: int = 0
    lines: list[BillingLine] = field(default_factory=list)
    closed_at: datetime | None = None


@dataclass(slots=True)
class AuditEntry:
    """One administrative or privacy action (who did what to whom), appended, never edited."""

    actor: str
    action: str
    target: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)
    id: str = field(default_factory=lambda: new_id("aud"))
    # The hash chain (see onyproxy.storage.audit_chain), set by Store.append_audit.
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None


class Store(PrivacyStore, SecurityStore, abc.ABC):
    """The narrow async repository every backend implements.

    Lists are ordered oldest first (then by id). Methods that change a record return the record
    as stored. Failures of the database itself raise :class:`StorageError`; a duplicate raises
    :class:`ConflictError`, a missing record :class:`NotFoundError`.
    """

    # lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the database answers now (readiness); never raises."""

    # accounts ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_account(self, account: Account) -> Account:
        """Insert a new account; a taken email raises :class:`ConflictError` on ``email``."""

    @abc.abstractmethod
    async def get_account(self, account_id: str) -> Account | None: ...

    @abc.abstractmethod
    async def get_account_by_email(self, email: str) -> Account | None: ...

    @abc.abstractmethod
    async def list_accounts(
        self, *, status: AccountStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[Account]: ...

    @abc.abstractmethod
    async def update_account(self, account_id: str, changes: Mapping[str, Any]) -> Account:
        """Set the given fields (names from :data:`ACCOUNT_UPDATABLE`) and ``updated_at``."""

    @abc.abstractmethod
    async def set_account_status(
        self, account_id: str, status: AccountStatus, *, at: datetime | None = None
    ) -> Account:
        """Change the status; ``deleted`` sets ``deleted_at`` (to ``at``), others clear it."""

    # api keys ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_key(self, key: ApiKey) -> ApiKey:
        """Insert a key record; an unknown account raises :class:`NotFoundError`."""

    @abc.abstractmethod
    async def get_key(self, key_id: str) -> ApiKey | None: ...

    @abc.abstractmethod
    async def get_key_by_hash(self, key_hash: str) -> ApiKey | None: ...

    @abc.abstractmethod
    async def list_keys(self, account_id: str, *, include_revoked: bool = True) -> list[ApiKey]: ...

    @abc.abstractmethod
    async def revoke_key(self, key_id: str, *, at: datetime | None = None) -> ApiKey:
        """Mark the key revoked; revoking twice keeps the first ``revoked_at``."""

    @abc.abstractmethod
    async def touch_key(self, key_id: str, at: datetime) -> None:
        """Record a use of the key (``last_used_at``); never moves the time backwards."""

    @abc.abstractmethod
    async def delete_key(self, key_id: str) -> bool:
        """Remove the key record; False when there was none."""

    # usage events --------------------------------------------------------------------------
    @abc.abstractmethod
    async def insert_usage_events(self, events: Sequence[UsageEvent]) -> int:
        """Insert events, silently skipping request ids already stored; return how many were new."""

    @abc.abstractmethod
    async def list_usage_events(
        self,
        *,
        account_id: str | None = None,
        key_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[UsageEvent]:
        """Events matching every filter given; ``since`` inclusive, ``until`` exclusive."""

    @abc.abstractmethod
    async def usage_totals(
        self,
        *,
        group_by: Sequence[str],
        account_id: str | None = None,
        key_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        billable_only: bool = False,
    ) -> list[UsageTotal]:
        """Events matching the filters, summed per distinct value of the ``group_by``
        dimensions (names from :data:`USAGE_DIMENSIONS`), ordered by those values (``None``
        first). Money is summed exactly, as decimals. An empty ``group_by`` gives one total
        (none when nothing matched)."""

    # billing -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def upsert_billing_record(self, record: BillingRecord) -> None:
        """Create or replace the totals of ``(account_id, month)``."""

    @abc.abstractmethod
    async def list_billing_records(
        self, *, account_id: str | None = None, month: str | None = None
    ) -> list[BillingRecord]:
        """Records ordered by month, then account."""

    # audit log -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def append_audit(self, entry: AuditEntry) -> None: ...

    @abc.abstractmethod
    async def list_audit(
        self, *, actor: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[AuditEntry]: ...


def check_account_changes(changes: Mapping[str, Any]) -> None:
    """Refuse updates of fields :meth:`Store.update_account` does not own (a programming error)."""
    unknown = set(changes) - ACCOUNT_UPDATABLE
    if unknown:
        raise ValueError(f"cannot update account field(s): {', '.join(sorted(unknown))}")


def check_dimensions(group_by: Sequence[str]) -> None:
    """Refuse a grouping outside :data:`USAGE_DIMENSIONS` (a programming error)."""
    unknown = [d for d in group_by if d not in USAGE_DIMENSIONS]
    if unknown:
        raise ValueError(f"cannot group usage by: {', '.join(unknown)}")


def check_status(status: str) -> None:
    """Refuse an account status outside :data:`ACCOUNT_STATUSES`."""
    if status not in ACCOUNT_STATUSES:
        raise ValueError(f"unknown account status {status!r}")
