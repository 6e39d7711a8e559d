"""Which scopes a request counts against, and each scope's limits.

- the caller: the API key (``ex.identity.key_id``); without an identity (no auth plugin in the
  pipeline) the client IP, which is the load balancer's when the gateway sits behind one;
- the account (``ex.identity.account_id``), all its keys together;
- the model the client asked for, all callers together (``model_limits.<name>``);
- the caller on that model (``model_limits.<name>.per_key``).

A key's own limits (``identity.limits``: ``rpm``, ``tpm``, ``concurrent``) override
``defaults``; the account's (``account_rpm``, ``account_tpm``, ``account_concurrent``)
override ``account_defaults``. ``None`` means "use the default". A scope without any limit is
left out, so it costs nothing.
"""

from __future__ import annotations

from typing import Any

from onyproxy.exchange import Exchange
from plugins.ratelimit.config import Limits, RateLimitConfig
from plugins.ratelimit.window import Scope


def scopes_for(ex: Exchange, config: RateLimitConfig) -> tuple[Scope, ...]:
    """The limited scopes of ``ex``, caller first."""
    identity = ex.identity
    own = identity.limits if identity is not None else {}
    scopes: list[Scope] = []
    caller = _caller(ex)
    if caller is not None:
        name, kind = caller
        scopes.append(_scope(name, kind, config.defaults, own, ""))
    if identity is not None:
        scopes.append(_scope(f"account:{identity.account_id}", "account",
                             config.account_defaults, own, "account_"))
    model = config.model_limits.get(ex.model)
    if model is not None:
        scopes.append(Scope(f"model:{ex.model}", "model", model.rpm, model.tpm,
                            model.concurrent))
        if model.per_key is not None and caller is not None:
            limits = model.per_key
            scopes.append(Scope(f"{caller[0]}|model:{ex.model}", "key_model",
                                limits.rpm, limits.tpm, limits.concurrent))
    return tuple(scope for scope in scopes if scope.limited)


def _caller(ex: Exchange) -> tuple[str, str] | None:
    if ex.identity is None:
        return f"ip:{ex.client_ip or 'unknown'}", "ip"
    if ex.identity.key_id:
        return f"key:{ex.identity.key_id}", "key"
    return None  # signed in without a key (e.g. a dashboard session): account limits apply


def _scope(name: str, kind: str, defaults: Limits, own: dict[str, Any], prefix: str) -> Scope:
    return Scope(name, kind,
                 rpm=_pick(own, prefix + "rpm", defaults.rpm),
                 tpm=_pick(own, prefix + "tpm", defaults.tpm),
                 concurrent=_pick(own, prefix + "concurrent", defaults.concurrent))


def _pick(own: dict[str, Any], name: str, default: int | None) -> int | None:
    value = own.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return max(0, value)  # 0 refuses every request: a way to suspend a key
    return default
