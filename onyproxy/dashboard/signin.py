"""Who may sign in to the dashboard, what their session may do, and whether it still stands.

Anyone with a valid API key of an active account signs in as that account. The key's role
decides the rest: an **owner** key's session manages the account (creates and revokes keys,
changes the account's details, erases it) and, for an admin account, opens the admin pages;
any other key's session is read-only and sees only that key's own usage, so a key is worth no
more in the dashboard than on the API. An admin JWT (checked by
:func:`onyproxy.admin.auth.verify_jwt`, like the admin API does) opens the admin pages only: it
names no account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from onyproxy.admin.auth import verify_jwt
from onyproxy.config.model import SecurityConfig
from onyproxy.dashboard.session import Session, Signer, secret_fingerprint
from onyproxy.errors import GatewayError
from onyproxy.keys import find_usable_key, key_is_usable
from onyproxy.storage import Account, ApiKey, Store

INVALID = "That key or token is not valid, or its account is not active."


class SignInError(Exception):
    """The credential was refused; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person as the pages see them (re-checked on every request)."""

    session: Session
    account: Account | None
    is_admin: bool
    key: ApiKey | None = None  # the key the session was opened with (None for a JWT)

    @property
    def actor(self) -> str:
        return self.session.actor

    @property
    def owner(self) -> bool:
        """Signed in with an owner key: may manage the account."""
        return self.key is not None and self.key.owner

    @property
    def can_write(self) -> bool:
        """May change anything at all (an owner key, or an admin JWT on the admin pages)."""
        return self.owner or self.session.via == "jwt"


async def sign_in(credential: str, store: Store, security: SecurityConfig,
                  signer: Signer) -> Session:
    """A new session for an API key or an admin JWT; :class:`SignInError` otherwise."""
    credential = credential.strip()
    if credential.count(".") == 2:
        return _jwt_session(credential, security, signer)
    found = await find_usable_key(store, credential, security.key_pepper)
    if found is None:
        raise SignInError(INVALID)
    key, account = found
    return signer.new_session("key", f"account:{account.id}", account_id=account.id,
                              key_id=key.id, not_after=_expiry(key))


async def current_viewer(session: Session | None, store: Store, security: SecurityConfig,
                         now: float) -> Viewer | None:
    """The viewer behind a session, or ``None`` when it was signed out, or its key, account
    or JWT secret no longer allows it (``now``: seconds since the epoch)."""
    if session is None:
        return None
    moment = datetime.fromtimestamp(now, UTC)
    if await store.session_revoked(session.sid, moment):
        return None
    if session.via == "jwt":
        if session.fingerprint != secret_fingerprint(security.jwt_secret):
            return None  # the secret changed (or JWT sign-in was switched off)
        return Viewer(session=session, account=None, is_admin=True)
    key = await store.get_key(session.key_id or "")
    account = await store.get_account(session.account_id or "")
    if key is None or account is None or key.account_id != account.id \
            or account.status != "active" or not key_is_usable(key, moment):
        return None
    return Viewer(session=session, account=account, key=key,
                  is_admin=account.role == "admin" and key.owner)


def _jwt_session(token: str, security: SecurityConfig, signer: Signer) -> Session:
    try:
        admin = verify_jwt(token, security, now=signer.now())
    except GatewayError as err:
        raise SignInError(err.message) from None
    return signer.new_session("jwt", admin.actor, not_after=admin.expires,
                              fingerprint=secret_fingerprint(security.jwt_secret))


def _expiry(key: ApiKey) -> float | None:
    return key.expires_at.timestamp() if key.expires_at is not None else None
