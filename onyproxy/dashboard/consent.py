"""Cookie consent: what the visitor allowed, and the optional cookies that depend on it.

Essential cookies (the session, the CSRF cookie and this consent record itself) are always
on. ``functional`` allows ``onyproxy_prefs`` (remembered page preferences); ``analytics``
allows ``onyproxy_analytics`` (a random visitor id; there is no analytics service behind it,
it stands for one). Neither is ever set before the visitor said yes, and both are deleted when
the visitor says no. The choice is kept for :data:`MAX_AGE_S` in ``onyproxy_consent``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from aiohttp import web

from onyproxy.dashboard.session import PATH

COOKIE = "onyproxy_consent"
ANALYTICS_COOKIE = "onyproxy_analytics"
PREFS_COOKIE = "onyproxy_prefs"
MAX_AGE_S = 180 * 24 * 3600
VERSION = 1
_SHAPE = re.compile(r"^v(\d+)\.f([01])\.a([01])$")


@dataclass(frozen=True, slots=True)
class Consent:
    """The visitor's choice; ``given`` is false until they made one (the banner shows)."""

    functional: bool = False
    analytics: bool = False
    given: bool = False

    def encode(self) -> str:
        return f"v{VERSION}.f{int(self.functional)}.a{int(self.analytics)}"


def read_consent(request: web.Request) -> Consent:
    """The stored choice; none (or one from an older banner version) asks again."""
    match = _SHAPE.match(request.cookies.get(COOKIE, ""))
    if match is None or int(match.group(1)) != VERSION:
        return Consent()
    return Consent(functional=match.group(2) == "1", analytics=match.group(3) == "1",
                   given=True)


def apply_consent(request: web.Request, response: web.StreamResponse, consent: Consent,
                  *, secure: bool) -> None:
    """Store the choice, and set or delete the optional cookies to match it."""
    _set(response, COOKIE, consent.encode(), secure)
    if consent.analytics:
        if ANALYTICS_COOKIE not in request.cookies:
            _set(response, ANALYTICS_COOKIE, secrets.token_urlsafe(12), secure)
    else:
        _delete(request, response, ANALYTICS_COOKIE, secure)
    if not consent.functional:
        _delete(request, response, PREFS_COOKIE, secure)


def remember_pref(request: web.Request, response: web.StreamResponse, value: str, *,
                  secure: bool) -> None:
    """Keep a page preference, only when functional cookies are allowed."""
    if read_consent(request).functional:
        _set(response, PREFS_COOKIE, value, secure)


def _set(response: web.StreamResponse, name: str, value: str, secure: bool) -> None:
    response.set_cookie(name, value, max_age=MAX_AGE_S, path=PATH, httponly=True,
                        secure=secure, samesite="Lax")


def _delete(request: web.Request, response: web.StreamResponse, name: str,
            secure: bool) -> None:
    if name in request.cookies:
        response.del_cookie(name, path=PATH, secure=secure, httponly=True, samesite="Lax")
