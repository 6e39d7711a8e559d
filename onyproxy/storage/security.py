"""What the security plugin needs from a store: key suspension and security events; and the
dashboard's record of signed-out sessions.

:class:`~onyproxy.storage.base.Store` inherits :class:`SecurityStore`, so every backend
implements these and passes the same contract suite (``tests/storage``).

A suspended key is refused like a revoked one (:func:`onyproxy.keys.key_is_usable`) but can be
reinstated; the suspension (who, when, why) lives on the key record. A security event is one
detection of the ``security`` plugin (a usage spike, a key used from many addresses, a burst of
failed sign-ins from one address): numbers only, never content; the client address only as
the plugin's keyed hash (unless its operator chose ``client_ip: keep``).

Dashboard sessions are signed cookies; signing out records the session id here until the
session would have expired, so a copy of the cookie stops working on every worker and every
gateway sharing the database (see :mod:`onyproxy.dashboard.session`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onyproxy.storage.base import ApiKey

SECURITY_ACTIONS: tuple[str, ...] = ("log", "suspend")


@dataclass(slots=True)
class SecurityEvent:
    """One detection of the security plugin.

    ``kind`` names the detector (``usage_spike``, ``many_ips``, ``auth_failures``);
    ``action`` is what followed (``log``, or ``suspend`` when the key was suspended for it).
    ``key_id``/``account_id`` are set for key detectors, ``client`` (the hashed address) for
    address detectors. ``evidence`` holds the numbers the decision rested on (counts,
    baseline, threshold, window) and ``reason`` says it in one sentence.
    """

    id: str
    kind: str
    at: datetime
    action: str = "log"
    key_id: str | None = None
    account_id: str | None = None
    client: str | None = None
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


class SecurityStore(abc.ABC):
    """The security part of the repository interface (see the module docs)."""

    @abc.abstractmethod
    async def suspend_key(self, key_id: str, *, reason: str, by: str,
                          at: datetime) -> ApiKey:
        """Suspend the key; a key already suspended keeps its first suspension (compare the
        returned ``suspended_at`` with ``at`` to learn whether this call suspended it). An
        unknown key raises :class:`NotFoundError`."""

    @abc.abstractmethod
    async def reinstate_key(self, key_id: str) -> ApiKey:
        """Lift a suspension (a no-op for a key that is not suspended); revocation and expiry
        are untouched. An unknown key raises :class:`NotFoundError`."""

    @abc.abstractmethod
    async def add_security_event(self, event: SecurityEvent) -> None:
        """Store a detection; an event id already stored is a :class:`ConflictError`."""

    @abc.abstractmethod
    async def list_security_events(
        self, *, account_id: str | None = None, key_id: str | None = None,
        kind: str | None = None, action: str | None = None, since: datetime | None = None,
        limit: int = 100, newest_first: bool = False,
    ) -> list[SecurityEvent]:
        """Events matching every filter given (``since`` inclusive), oldest first, or with
        ``newest_first`` the latest ``limit`` events, newest first (an admin page's view)."""

    @abc.abstractmethod
    async def purge_security_events(self, before: datetime, *, dry_run: bool = False) -> int:
        """Delete events older than ``before``; how many were (or would be)."""

    @abc.abstractmethod
    async def revoke_session(self, session_id: str, until: datetime) -> None:
        """Record a dashboard session as ended until ``until`` (its own expiry); recording it
        again is harmless. Records whose ``until`` has passed may be dropped at any time."""

    @abc.abstractmethod
    async def session_revoked(self, session_id: str, now: datetime) -> bool:
        """True when the session id was recorded as ended and its ``until`` is after ``now``."""
