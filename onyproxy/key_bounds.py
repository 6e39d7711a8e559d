"""A key created from another key's dashboard session is never worth more than that key.

:func:`bound_by` checks a new key's limits against its creator's: its models and regions a
subset, each of rpm, tpm, concurrent and the monthly budget no higher, and an expiry no later
(and required when the creator has one). A limit the new key leaves unset is the creator's,
not the gateway's default, which may be higher. A breach is a
:class:`~onyproxy.accounts.ValidationError` naming the field and the creator's limit, so the
form can say what to change.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from onyproxy.accounts import ValidationError
from onyproxy.storage.base import ApiKey

NUMBERS = ("rpm", "tpm", "concurrent", "budget_usd")


def bound_by(record: ApiKey, creator: ApiKey) -> ApiKey:
    """``record`` with the creator's limits filled in where it has none, and ``created_by``
    set; :class:`ValidationError` when it would exceed one of them."""
    changes: dict[str, object] = {"created_by": creator.id}
    for name in NUMBERS:
        mine, cap = getattr(record, name), getattr(creator, name)
        if cap is None:
            continue
        if mine is None:
            changes[name] = cap
        elif mine > cap:
            raise ValidationError(name, f"must be at most {cap}, the limit of the key you "
                                        f"signed in with")
    for name, noun in (("models", "model"), ("regions", "region")):
        mine, allowed = getattr(record, name), getattr(creator, name)
        if allowed is None:
            continue
        if mine is None:
            changes[name] = list(allowed)
        elif extra := [item for item in mine if item not in allowed]:
            raise ValidationError(name, f"the key you signed in with may not use the {noun} "
                                        f"{', '.join(extra)} (it may use only "
                                        f"{', '.join(allowed)})")
    _check_expiry(record.expires_at, creator.expires_at)
    return replace(record, **changes)  # type: ignore[arg-type]


def _check_expiry(mine: datetime | None, cap: datetime | None) -> None:
    if cap is None:
        return
    limit = cap.strftime("%Y-%m-%d %H:%M UTC")
    if mine is None:
        raise ValidationError("expires_at", f"is required: the key you signed in with expires "
                                         f"{limit}, and a key it creates may not outlive it")
    if mine > cap:
        raise ValidationError("expires_at", f"must be no later than {limit}, when the key you "
                                         f"signed in with expires")
