"""Who may sign in to the dashboard, and whether a session still stands.

Anyone with a valid API key of an active account signs in as that account; an admin account's
key also opens the admin pages. An admin JWT (the one the admin API accepts, checked by
:func:`onyproxy.admin.auth.verify_jwt`) opens the admin pages only: it names no account.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from onyproxy.admin.auth import verify_jwt
from onyproxy.dashboard.session import Session, Signer
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

    @property
    def actor(self) -> str:
        return self.session.actor


async def sign_in(credential: str, store: Store, pepper: str, jwt_secret: str,
                  signer: Signer) -> Session:
    """A new session for an API key or an admin JWT; :class:`SignInError` otherwise."""
    credential = credential.strip()
    if credential.count(".") == 2:
        return _jwt_session(credential, jwt_secret, signer)
    found = await find_usable_key(store, credential, pepper)
    if found is None:
        raise SignInError(INVALID)
    key, account = found
    return signer.new_session("key", f"account:{account.id}", account_id=account.id,
                              key_id=key.id, not_after=_expiry(key))


async def current_viewer(session: Session | None, store: Store) -> Viewer | None:
    """The viewer behind a session, or ``None`` when its key or account no longer allows it."""
    if session is None:
        return None
    if session.via == "jwt":
        return Viewer(session=session, account=None, is_admin=True)
    key = await store.get_key(session.key_id or "")
    account = await store.get_account(session.account_id or "")
    if key is None or account is None or key.account_id != account.id \
            or account.status != "active" or not key_is_usable(key):
        return None
    return Viewer(session=session, account=account, is_admin=account.role == "admin")


def _jwt_session(token: str, secret: str, signer: Signer) -> Session:
    try:
        admin = verify_jwt(token, secret)
    except GatewayError as err:
        raise SignInError(err.message) from None
    # The claims were verified just above; read exp for the session's lifetime.
    exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    return signer.new_session("jwt", admin.actor, not_after=float(exp))


def _expiry(key: ApiKey) -> float | None:
    return key.expires_at.timestamp() if key.expires_at is not None else None
