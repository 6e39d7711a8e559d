"""What the privacy features need from a store: retention purges, data-subject erasure,
objections, privacy-policy acceptance, job leases and the audit log's hash chain.

:class:`~onyproxy.storage.base.Store` inherits :class:`PrivacyStore`, so every backend
implements these too and passes the same contract suite (``tests/storage``). The records here
hold no content and, apart from an objection's reason, nothing a person typed.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from onyproxy.storage.base import AuditEntry

ObjectionStatus = Literal["open", "upheld", "rejected"]
OBJECTION_STATUSES: tuple[str, ...] = ("open", "upheld", "rejected")


@dataclass(slots=True)
class Objection:
    """A data subject's objection to an automated decision, waiting for a person's review.

    ``decision`` names what was decided automatically (e.g. ``key suspended by the IP block``);
    ``actor`` is who recorded the objection. ``resolved_*`` are set by the reviewer. When the
    decision is an automatic suspension on record, ``event_id``, ``key_id`` and ``decided_at``
    name the security event that suspended the key, so the reviewer sees what is contested.
    """

    id: str
    account_id: str
    reason: str
    actor: str
    created_at: datetime
    decision: str | None = None
    status: ObjectionStatus = "open"
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    event_id: str | None = None
    key_id: str | None = None
    decided_at: datetime | None = None


@dataclass(slots=True)
class Recipient:
    """A provider an account's requests were sent to, from its usage events."""

    provider: str
    requests: int
    first_at: datetime
    last_at: datetime


@dataclass(slots=True)
class PolicyStatus:
    """Which privacy-policy version an account accepted, and which one it was told about."""

    account_id: str
    version: str | None = None
    accepted_at: datetime | None = None
    notice_version: str | None = None
    notice_at: datetime | None = None


@dataclass(slots=True)
class AccountPurge:
    """What purging deleted accounts removed (or, in a dry run, would remove)."""

    accounts: int = 0
    keys: int = 0
    security_events: int = 0


@dataclass(slots=True)
class Erasure:
    """What erasing a data subject changed besides the account itself."""

    keys_revoked: int = 0
    usage_events: int = 0  # events whose IP and user agent were cleared
    security_events: int = 0  # security events whose (hashed) client address was dropped


class PrivacyStore(abc.ABC):
    """The privacy part of the repository interface (see the module docs)."""

    # retention -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def purge_usage_events(self, before: datetime, *, dry_run: bool = False) -> int:
        """Delete usage events created before ``before``; how many were (or would be)."""

    @abc.abstractmethod
    async def purge_deleted_accounts(
        self, deleted_before: datetime, *, dry_run: bool = False
    ) -> AccountPurge:
        """Remove accounts deleted before ``deleted_before`` with their keys, objections,
        policy records and security events; their usage events lose IP and user agent.
        Billing records stay: they name only the account id, which then points to nobody."""

    @abc.abstractmethod
    async def purge_billing_records(self, before_month: str, *, dry_run: bool = False) -> int:
        """Delete billing records of months before ``before_month`` (``YYYY-MM``)."""

    @abc.abstractmethod
    async def claim_lease(self, name: str, holder: str, *, now: datetime,
                          until: datetime) -> bool:
        """Hold the lease ``name`` until ``until`` when it is free (expired by ``now``) or
        already ``holder``'s; False when another holder has it. Lets one of many gateway
        processes run a periodic job."""

    # data subjects -------------------------------------------------------------------------
    @abc.abstractmethod
    async def usage_recipients(self, account_id: str) -> list[Recipient]:
        """Each provider the account's usage events name, with counts and first/last time,
        ordered by provider."""

    @abc.abstractmethod
    async def erase_subject(self, account_id: str, *, email: str, at: datetime) -> Erasure:
        """Replace the account's personal data with placeholders (``email`` must be unique,
        e.g. ``erased-<id>@invalid``), mark it deleted, revoke and rename its keys, clear IP
        and user agent of its usage events and the client address of its security events.
        Idempotent: running it again completes a partial
        erasure. An unknown account raises :class:`NotFoundError`."""

    @abc.abstractmethod
    async def add_objection(self, objection: Objection) -> Objection: ...

    @abc.abstractmethod
    async def get_objection(self, objection_id: str) -> Objection | None: ...

    @abc.abstractmethod
    async def list_objections(
        self, *, account_id: str | None = None, status: ObjectionStatus | None = None,
        limit: int = 1000,
    ) -> list[Objection]:
        """Objections, oldest first."""

    @abc.abstractmethod
    async def resolve_objection(
        self, objection_id: str, *, status: ObjectionStatus, by: str, resolution: str,
        at: datetime,
    ) -> Objection:
        """Record a reviewer's outcome; an unknown id raises :class:`NotFoundError`."""

    # privacy policy ------------------------------------------------------------------------
    @abc.abstractmethod
    async def record_policy_acceptance(self, account_id: str, version: str,
                                       at: datetime) -> PolicyStatus:
        """The account accepted ``version`` at ``at`` (an unknown account: NotFoundError)."""

    @abc.abstractmethod
    async def record_policy_notice(self, account_id: str, version: str, at: datetime) -> None:
        """The account was sent a notice about ``version`` at ``at``."""

    @abc.abstractmethod
    async def policy_statuses(self, account_ids: Sequence[str]) -> dict[str, PolicyStatus]:
        """The policy records of those accounts that have one, by account id."""

    # audit chain ---------------------------------------------------------------------------
    #: The HMAC key new audit entries are sealed with (see onyproxy.storage.audit_chain); set
    #: by onyproxy.privacy.audit.arm_audit once the pepper is known. None: plain SHA-256.
    audit_key: bytes | None = None

    @abc.abstractmethod
    async def list_audit_chain(self, *, after_seq: int = 0,
                               limit: int = 1000) -> list[AuditEntry]:
        """Chained audit entries with ``seq`` above ``after_seq``, in chain order."""

    @abc.abstractmethod
    async def count_audit(self) -> int:
        """Every audit entry, chained or not."""

    @abc.abstractmethod
    async def first_unchained_audit(self) -> AuditEntry | None:
        """The oldest audit entry without a place in the chain (none should exist)."""
