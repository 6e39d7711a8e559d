"""Dashboard sessions and CSRF tokens: signed cookies, and a server-side list of ended ones.

A session is a small JSON payload (random session id, who signed in and how, expiry) in the
``onyproxy_session`` cookie, followed by its HMAC-SHA256. The signing secret is derived from
the key pepper (``security.key_pepper``, resolved at start), which every worker, every gateway
sharing a database and the CLI already hold in common; so with ``server.workers > 1`` or
several gateways behind a load balancer any process accepts a session another one issued, and
nothing is kept in memory. The cookie is HttpOnly, SameSite=Lax, limited to ``/ui/``, Secure
when ``server.tls`` is set, and lives :data:`LIFETIME_S` (the payload's own expiry is checked
too, so a replayed old cookie does not outlive it).

A signed cookie cannot be taken back by itself, so every request also checks the server:
signing out records the session id in the store until the session would have expired
(:meth:`~onyproxy.storage.security.SecurityStore.revoke_session`), so a copy of the cookie
stops working on every worker and gateway sharing the database. Every request re-reads the API
key a session was opened with and its account: revoking, suspending or expiring the key,
suspending or deleting the account, or taking the admin role away ends the session at once
(see :mod:`onyproxy.dashboard.signin`). A session opened with an admin JWT ends at the token's
``exp`` and carries a fingerprint of ``security.jwt_secret``, so changing that secret ends it.
Changing the pepper ends them all. The clock (:data:`CLOCK` on the application, the wall clock
by default) is the one every expiry is checked against.

CSRF: each form carries a token that is the HMAC of the session id (before sign-in: of a random
``onyproxy_csrf`` cookie), so a token is useless with another session and cannot be forged
without the secret. POSTs whose ``Origin`` names another host are refused as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import orjson
from aiohttp import web

COOKIE = "onyproxy_session"
ANON_COOKIE = "onyproxy_csrf"
PATH = "/ui"
LIFETIME_S = 8 * 3600
_LABEL = b"onyproxy/dashboard/session/v1"
_FINGERPRINT = b"onyproxy/dashboard/jwt-secret/v1"


@dataclass(frozen=True, slots=True)
class Session:
    """Who signed in: with an API key (``key_id`` and ``account_id`` set) or an admin JWT."""

    sid: str
    via: Literal["key", "jwt"]
    actor: str
    expires: int
    account_id: str | None = None
    key_id: str | None = None
    fingerprint: str | None = None  # of the jwt_secret a JWT session was opened under


CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("dashboard_clock")


def secret_fingerprint(secret: str) -> str:
    """A short, one-way mark of a secret: equal marks mean the secret has not changed."""
    return _b64(hmac.new(secret.encode(), _FINGERPRINT, hashlib.sha256).digest()[:12])


def derive_secret(pepper: str) -> bytes:
    """The signing secret: an HMAC of a fixed label under the key pepper, so the pepper
    itself never signs anything a browser sees."""
    if not pepper:
        raise ValueError("the dashboard needs the resolved security.key_pepper")
    return hmac.new(pepper.encode(), _LABEL, hashlib.sha256).digest()


class Signer:
    """Issues and reads session cookies and CSRF tokens under one secret."""

    def __init__(self, secret: bytes, *, secure: bool,
                 clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self.secure = secure
        self._clock = clock

    def now(self) -> float:
        """The time every expiry is checked against (seconds since the epoch)."""
        return self._clock()

    def new_session(self, via: Literal["key", "jwt"], actor: str, *,
                    account_id: str | None = None, key_id: str | None = None,
                    not_after: float | None = None,
                    fingerprint: str | None = None) -> Session:
        """A fresh session (new id) lasting :data:`LIFETIME_S`, or less when ``not_after``
        (e.g. a JWT's ``exp``) comes first."""
        expires = self._clock() + LIFETIME_S
        if not_after is not None:
            expires = min(expires, not_after)
        return Session(sid=secrets.token_urlsafe(18), via=via, actor=actor,
                       expires=int(expires), account_id=account_id, key_id=key_id,
                       fingerprint=fingerprint)

    def encode(self, session: Session) -> str:
        payload = _b64(orjson.dumps(asdict(session)))
        return f"{payload}.{self._mac(payload)}"

    def decode(self, value: str | None) -> Session | None:
        """The session a cookie holds; ``None`` when it is absent, forged or expired."""
        if not value or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            session = Session(**orjson.loads(_unb64(payload)))
        except (ValueError, TypeError):
            return None
        return session if session.expires > self._clock() else None

    def csrf_token(self, basis: str) -> str:
        """The form token for a session id (or the anonymous CSRF cookie)."""
        return self._mac(f"csrf:{basis}")

    def csrf_ok(self, basis: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token or "", self.csrf_token(basis))

    def set_session_cookie(self, response: web.StreamResponse, session: Session) -> None:
        max_age = max(0, int(session.expires - self._clock()))
        self._set(response, COOKIE, self.encode(session), max_age)

    def set_anon_cookie(self, response: web.StreamResponse, value: str) -> None:
        self._set(response, ANON_COOKIE, value, LIFETIME_S)

    def clear_session_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path=PATH, secure=self.secure, httponly=True,
                            samesite="Lax")

    def _set(self, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True,
                            secure=self.secure, samesite="Lax")

    def _mac(self, text: str) -> str:
        return _b64(hmac.new(self._secret, text.encode(), hashlib.sha256).digest())


def new_anon_basis() -> str:
    return secrets.token_urlsafe(18)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
