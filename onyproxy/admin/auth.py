"""Signing in to the admin API: an admin's API key, or a JWT.

Either travels as ``Authorization: Bearer <credential>`` (a key may also come as
``x-api-key``). A JWT must be HS256-signed with ``security.jwt_secret``, carry ``exp`` and
``sub`` (the admin it names, used as the audit actor) and ``role: admin``; its ``exp`` may lie
at most ``security.jwt_max_lifetime_s`` after its ``iat`` (after now when it has none), so a
leaked token cannot be minted to last for years; ``iss`` and ``aud`` must match
``security.jwt_issuer`` and ``security.jwt_audience`` when those are set. A key must be valid
and be an owner key of an active account whose role is ``admin``. Bad credentials are 401; good ones
without the admin role are 403. Keys are looked up on every call (no cache): admin traffic is
light, and a revoked admin key must stop at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jwt
from aiohttp import web

from onyproxy.config.model import SecurityConfig
from onyproxy.errors import GatewayError
from onyproxy.keys import find_usable_key

if TYPE_CHECKING:
    from onyproxy.gateway import Gateway

ALGORITHM = "HS256"
MIN_SECRET = 32  # shorter HS256 secrets can be brute-forced from one captured token
INVALID_KEY = "Invalid admin API key."


@dataclass(frozen=True, slots=True)
class Admin:
    """Who is calling the admin API; ``actor`` is what the audit log records, ``expires``
    a JWT's ``exp`` (seconds since the epoch)."""

    actor: str
    via: Literal["key", "jwt"]
    account_id: str | None = None
    expires: float | None = None


def unauthorized(message: str) -> GatewayError:
    return GatewayError(401, "authentication_error", message, code="invalid_credentials",
                        headers={"www-authenticate": 'Bearer realm="onyproxy-admin"'})


def forbidden(message: str, code: str = "not_admin") -> GatewayError:
    return GatewayError(403, "permission_error", message, code=code)


async def authenticate(request: web.Request, gw: Gateway) -> Admin:
    """The admin calling, or a 401 (counted as an auth failure; 429 once the address or key
    prefix is blocked) or 403 :class:`GatewayError`."""
    try:
        return await _authenticate(request, gw)
    except GatewayError as err:
        metrics = gw.metrics
        if err.status == 401 and metrics is not None and hasattr(metrics, "auth_failure"):
            metrics.auth_failure("admin")
        if err.status == 401 and (credential := _credential(request)) is not None:
            # Counted with the API's and the dashboard's failures; a valid one is never held.
            guard = gw.failure_guard
            refusal = await guard.failed(guard.client(request.remote, request.headers),
                                         credential)
            if refusal is not None:
                raise refusal from None
        raise


async def _authenticate(request: web.Request, gw: Gateway) -> Admin:
    credential = _credential(request)
    if credential is None:
        raise unauthorized("Sign in with 'Authorization: Bearer <admin JWT or admin API key>'.")
    if credential.count(".") == 2:
        return verify_jwt(credential, gw.config.security)
    return await _verify_key(credential, gw)


def _credential(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = request.headers.get("x-api-key", "").strip()
    return key or None


def verify_jwt(token: str, security: SecurityConfig, now: float | None = None) -> Admin:
    """The admin a token names; 401 when it is not a valid, current HS256 token within the
    configured lifetime, issuer and audience (see the module docs)."""
    if len(security.jwt_secret) < MIN_SECRET:
        raise unauthorized(f"JWT sign-in is off: security.jwt_secret is empty or shorter than "
                           f"{MIN_SECRET} characters. Use an admin API key instead.")
    claims = _decode(token, security)
    expires = _check_lifetime(claims, security.jwt_max_lifetime_s,
                              time.time() if now is None else now)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise unauthorized("The token's 'sub' claim must name the admin.")
    roles = claims.get("roles")
    if claims.get("role") != "admin" and not (isinstance(roles, list) and "admin" in roles):
        raise forbidden("The token does not carry the admin role.")
    return Admin(actor=f"jwt:{subject.strip()}", via="jwt", expires=expires)


def _check_lifetime(claims: dict[str, Any], max_lifetime_s: int, now: float) -> float:
    expires, issued = claims["exp"], claims.get("iat")
    start = float(issued) if isinstance(issued, int | float) else now
    if float(expires) - start > max_lifetime_s:
        since = "its 'iat'" if issued is not None else "now"
        raise unauthorized(f"The token's 'exp' lies more than {max_lifetime_s} seconds after "
                           f"{since} (security.jwt_max_lifetime_s); issue a shorter-lived "
                           f"token.")
    return float(expires)


def _decode(token: str, security: SecurityConfig) -> dict[str, Any]:
    issuer, audience = security.jwt_issuer or None, security.jwt_audience or None
    required = ["exp", "sub", *(["iss"] if issuer else []), *(["aud"] if audience else [])]
    try:
        # algorithms pins HS256: "alg: none" and every other algorithm are refused.
        return jwt.decode(token, security.jwt_secret, algorithms=[ALGORITHM],
                          options={"require": required}, issuer=issuer, audience=audience)
    except jwt.ExpiredSignatureError:
        raise unauthorized("The token has expired.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise unauthorized(f"The token has no '{exc.claim}' claim; "
                           f"{', '.join(repr(c) for c in required)} are required.") from None
    except jwt.InvalidAlgorithmError:
        raise unauthorized(f"The token must be signed with {ALGORITHM}.") from None
    except jwt.InvalidSignatureError:
        raise unauthorized("The token's signature is invalid.") from None
    except jwt.InvalidIssuerError:
        raise unauthorized(f"The token's 'iss' claim must be {issuer!r}.") from None
    except jwt.InvalidAudienceError:
        raise unauthorized(f"The token's 'aud' claim must name {audience!r}." if audience else
                           "The token names an audience ('aud') but security.jwt_audience "
                           "is not set.") from None
    except jwt.InvalidTokenError:
        raise unauthorized("The token is malformed or not valid yet.") from None


async def _verify_key(secret: str, gw: Gateway) -> Admin:
    found = await find_usable_key(gw.store, secret, gw.config.security.key_pepper)
    if found is None:
        raise unauthorized(INVALID_KEY)
    record, account = found
    if account.role != "admin":
        raise forbidden("This API key does not belong to an admin account.")
    if not record.owner:
        # The admin API can mint keys without limits: a limited key must not reach it.
        raise forbidden("Only an owner key of an admin account may use the admin API; this "
                        "key is not an owner key.", code="not_owner")
    return Admin(actor=f"account:{account.id}", via="key", account_id=account.id)
